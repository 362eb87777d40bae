"""One ASGI application: HTTP goes to Django, WebSockets to the inbox.

No origin check on WebSockets: the inbox socket authenticates with a token in the URL,
not with cookies, so a foreign page cannot ride on a user's session; and the widget is
meant to be embedded on other sites.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django_application = get_asgi_application()  # sets Django up before the routing imports models

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from inbox.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter({
    "http": django_application,
    "websocket": URLRouter(websocket_urlpatterns),
})

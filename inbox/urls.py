from django.urls import path

from inbox import demo, views

api = "api/v1/inbox/"

urlpatterns = [
    path("api/v1/users/<str:user_id>/inbox-token", views.InboxTokenCreate.as_view()),
    path(api + "items", views.ItemList.as_view()),
    path(api + "items/<str:item_id>", views.ItemDetail.as_view()),
    path(api + "items/<str:item_id>/batch", views.ItemBatch.as_view()),
    *[
        path(api + f"items/<str:item_id>/{action}", views.ItemAction.as_view(action_name=action))
        for action in views.ITEM_ACTIONS
    ],
    path(api + "groups", views.GroupList.as_view()),
    path(api + "unread-count", views.UnreadCount.as_view()),
    path(api + "mark-all-read", views.MarkAllRead.as_view()),
    path(api + "mark-all-seen", views.MarkAllSeen.as_view()),
    path("inbox/inbox.js", demo.widget_script, name="inbox-widget"),
    path("inbox/demo/", demo.demo_page, name="inbox-demo"),
    path("inbox/demo/token", demo.demo_token, name="inbox-demo-token"),
    path("inbox/demo/send", demo.demo_send, name="inbox-demo-send"),
]

"""Django's Redis cache, keeping one client per connection pool.

Django builds a new `redis.Redis` for every cache call; its constructor copies a table of
response callbacks, which profiling showed as the largest single cost of routing a campaign
chunk (two cache reads per person). A client is thread-safe and holds no connection of its
own, so one per pool is enough.
"""

from django.core.cache.backends.redis import RedisCache, RedisCacheClient


class ReusingClient(RedisCacheClient):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._clients = {}

    def get_client(self, key=None, *, write=False):
        pool = self._get_connection_pool(write)
        client = self._clients.get(id(pool))
        if client is None:
            client = self._clients[id(pool)] = self._client(connection_pool=pool)
        return client


class ReusingRedisCache(RedisCache):
    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = ReusingClient

"""moto_server, with each request handled whole before the next begins.

moto's backends take no lock: two concurrent conditional writes (UpdateItem with a
ConditionExpression, TransactWriteItems) can both read the old item and both succeed, which AWS
never allows. The tests race writers on purpose (one challenge, twenty consumers), so the local
emulator must be atomic per request, as DynamoDB is per item. Connections are still accepted
concurrently (moto's threaded server); only the handling of requests is serialized.
Started by scripts/stack-lib.sh with moto_server's own arguments."""
import sys
import threading

from moto import server
from moto.moto_server.werkzeug_app import DomainDispatcherApplication

_lock = threading.Lock()
_handle = DomainDispatcherApplication.__call__


def _one_at_a_time(self, environ, start_response):
    with _lock:
        # The whole body inside the lock: a lazy WSGI iterable would run outside it.
        return list(_handle(self, environ, start_response))


DomainDispatcherApplication.__call__ = _one_at_a_time

if __name__ == "__main__":
    server.main(sys.argv[1:])

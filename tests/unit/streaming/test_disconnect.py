import time

import gevent
from gevent import socket

from streaming.disconnect import DisconnectWatcher


def _watch(sock):
    noticed = []
    watcher = DisconnectWatcher(sock, lambda: noticed.append(time.monotonic()))
    return watcher, noticed


def test_peer_close_is_noticed_without_any_write():
    server_side, client_side = socket.socketpair()
    watcher, noticed = _watch(server_side)
    gevent.sleep(0.02)
    assert noticed == []
    closed_at = time.monotonic()
    client_side.close()
    gevent.sleep(0.05)
    assert len(noticed) == 1
    assert noticed[0] - closed_at < 0.05
    watcher.stop()
    server_side.close()


def test_data_from_the_peer_is_not_a_disconnect_and_is_left_unread():
    server_side, client_side = socket.socketpair()
    watcher, noticed = _watch(server_side)
    client_side.sendall(b"pipelined")
    gevent.sleep(0.05)
    assert noticed == []
    assert server_side.recv(100) == b"pipelined"
    watcher.stop()
    server_side.close()
    client_side.close()


def test_stop_is_idempotent_and_silences_the_watcher():
    server_side, client_side = socket.socketpair()
    watcher, noticed = _watch(server_side)
    watcher.stop()
    watcher.stop()
    client_side.close()
    gevent.sleep(0.05)
    assert noticed == []
    server_side.close()

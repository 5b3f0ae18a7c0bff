"""Sockets and polling: the UDP port range media binds in, and the epoll poller that reads
every media socket in batches.
"""

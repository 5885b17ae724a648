"""The local stack: Redis and every service as processes on 127.0.0.1 (`intervene up | status | down`)."""

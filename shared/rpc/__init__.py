"""The gRPC scaffold every Intervene service runs on.

`server.start_server` / `server.run_service` build a `grpc.server` with bearer-token auth, error mapping,
Prometheus metrics, health (driven by dependency checks), reflection, TLS and SIGTERM drain; `client.connect`
is the matching client side. Services only describe themselves with a `server.ServiceSpec`.
"""

async def test_health_on_both_ports(sandbox):
    for env in ("test", "production"):
        reply = await sandbox.request("GET", "/_sandbox/health", env)
        assert reply.status == 200
        assert reply.json == {"status": "ok", "environment": env}

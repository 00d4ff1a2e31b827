"""Load balancers a deployment drives around BlockTraffic and AllowTraffic: the built-in
asyncio proxy, HAProxy through its runtime API, and user commands."""

"""Long-lived host processes: what must outlive a deployment's runner (a deployment group's
load balancer, an ECS-like service's tasks and listeners) runs in a host of its own, started
detached on first use, one per folder, and driven by JSON calls over a Unix socket."""

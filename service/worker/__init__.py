"""The long-running runtime: pollers, the in-flight limit, the intake gate, the visibility heartbeat and disposal."""

"""The cluster side of the plugin: Kubernetes-backed fixtures and the Iago engine."""

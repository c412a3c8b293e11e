"""A Kubernetes API emulated on loopback (kmock), a kubelet, a Seldon scheduler, a Job
controller and a stand-in Core 2 mesh: what the tests (and a curious user, from a checkout)
run the cluster layer against. Not part of the installed package."""

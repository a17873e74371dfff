"""kubeadm-cluster: Pulumi components that build a kubeadm Kubernetes cluster.

The sub-packages follow the cluster's life: ``config`` -> ``machines`` -> ``bootstrap``
-> ``addons``. ``hardware`` is the single truth about the hardware minimums and
``versions`` the single place where every installed version is pinned.
"""

"""A real local Kubernetes for meshlift's end-to-end suite and cluster rehearsal.

- `localcluster.toolchain`: the pinned Go-module toolchain (Pulumi CLI, Python
  language host, Kubernetes provider, kube-apiserver, controller-manager,
  scheduler, etcd, kwok, istiod), built once and cached outside the checkout;
- `localcluster.charts`: Istio's own Helm charts from the istio.io/istio module,
  stamped with release versions and served on 127.0.0.1;
- `localcluster.cluster`: kwok clusters on 127.0.0.1 with a kubeconfig each and
  guaranteed cleanup.

A peer of `localmesh` (real Envoys on loopback): both bring the real world to
127.0.0.1, and neither imports `rollout` or `components`.
"""

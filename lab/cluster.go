package lab

import "github.com/drillship/drillship/lab/kube"

// Cluster is the lab's Kubernetes control plane, nil without
// PartKubernetes (tests bind roles and mint ServiceAccount kubeconfigs on it).
func (l *Lab) Cluster() *kube.Cluster { return l.cluster }

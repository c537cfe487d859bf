module lightsail-gui-operator/tools/argocd-health-check

go 1.25.0

require (
	github.com/yuin/gopher-lua v1.1.2
	k8s.io/apimachinery v0.30.1
	sigs.k8s.io/yaml v1.4.0
)

require sigs.k8s.io/json v0.0.0-20221116044647-bc3834ca7abd // indirect

{{/* Chart name, overridable. */}}
{{- define "lgo.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name of the release's objects; the release name alone when it already holds the chart name. */}}
{{- define "lgo.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "lgo.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "lgo.selectorLabels" -}}
app.kubernetes.io/name: {{ include "lgo.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "lgo.labels" -}}
helm.sh/chart: {{ include "lgo.chart" . }}
{{ include "lgo.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: lightsail-gui-operator
{{- end }}

{{- define "lgo.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "lgo.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "lgo.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- /* The Lease name the operator is given (LGO_LEASE_NAME): leaderElection.leaseName or the full name. */}}
{{- define "lgo.leaseName" -}}
{{- default (include "lgo.fullname" .) .Values.leaderElection.leaseName }}
{{- end }}

{{- /*
The Lease the operator really holds: a shard (--shard KEY) uses `<lease name>-KEY` (src/process/cli.rs,
lease_name()), so that shards and the default instance elect their leaders apart. RBAC names this
one; granting the base name alone leaves a shard forbidden to lead.
*/}}
{{- define "lgo.effectiveLeaseName" -}}
{{- if .Values.sharding.shard }}
{{- printf "%s-%s" (include "lgo.leaseName" .) .Values.sharding.shard }}
{{- else }}
{{- include "lgo.leaseName" . }}
{{- end }}
{{- end }}

{{- /*
The namespaces watched, comma-joined (LGO_WATCH_NAMESPACE): watchNamespaces, then the deprecated
watchNamespace when it is not listed already. Empty: all namespaces. Split it with
`splitList "," | compact`.
*/}}
{{- define "lgo.watchNamespaces" -}}
{{- $list := .Values.watchNamespaces | default list }}
{{- with .Values.watchNamespace }}
{{- $list = append $list . }}
{{- end }}
{{- $list | uniq | join "," }}
{{- end }}

{{- /*
--shutdown-grace: controller.shutdownGrace, or else terminationGracePeriodSeconds less 10 s, which
leaves the operator time to release the Lease (at most 5 s) and exit before the kubelet kills it.
*/}}
{{- define "lgo.shutdownGrace" -}}
{{- if .Values.controller.shutdownGrace -}}
{{- .Values.controller.shutdownGrace -}}
{{- else -}}
{{- printf "%ds" (max 1 (sub (int .Values.terminationGracePeriodSeconds) 10)) -}}
{{- end -}}
{{- end -}}

{{- /* Values a schema cannot judge with a clear message. */}}
{{- define "lgo.validate" -}}
{{- if .Values.leaderElection.enabled }}
{{- $lease := include "lgo.effectiveLeaseName" . }}
{{- if or (gt (len $lease) 253) (not (regexMatch "^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$" $lease)) }}
{{- fail (printf "the Lease name %q (leaderElection.leaseName or the release's full name, plus -<sharding.shard> for a shard) is not a valid object name: at most 253 lower-case letters, digits, '-' and '.'" $lease) }}
{{- end }}
{{- end }}
{{- range .Values.extraEnv }}
{{- if and (has .name (list "AWS_ACCESS_KEY_ID" "AWS_SECRET_ACCESS_KEY" "AWS_SESSION_TOKEN")) (hasKey . "value") }}
{{- fail (printf "extraEnv: %s must not be a literal value in Helm values (they end up in the release Secret and in Git); use IRSA, EKS Pod Identity, or valueFrom.secretKeyRef" .name) }}
{{- end }}
{{- end }}
{{- end }}

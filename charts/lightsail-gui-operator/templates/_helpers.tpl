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

{{- define "lgo.leaseName" -}}
{{- default (include "lgo.fullname" .) .Values.leaderElection.leaseName }}
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
{{- range .Values.extraEnv }}
{{- if and (has .name (list "AWS_ACCESS_KEY_ID" "AWS_SECRET_ACCESS_KEY" "AWS_SESSION_TOKEN")) (hasKey . "value") }}
{{- fail (printf "extraEnv: %s must not be a literal value in Helm values (they end up in the release Secret and in Git); use IRSA, EKS Pod Identity, or valueFrom.secretKeyRef" .name) }}
{{- end }}
{{- end }}
{{- end }}

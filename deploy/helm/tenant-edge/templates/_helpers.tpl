{{- define "tenant-edge.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* <type>-<component>-<partition>: the name an onboarding package gives its objects. */}}
{{- define "tenant-edge.fullname" -}}
{{- default (printf "%s-%s-%s" .Values.type .Values.component .Values.partition) .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The identity the gateway reads from the certificate (pki/names.ts). */}}
{{- define "tenant-edge.cn" -}}
{{- printf "%s.%s.%s.serviceradar" .Values.component .Values.partition .Values.tenant }}
{{- end }}

{{- define "tenant-edge.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tenant-edge.fullname" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "tenant-edge.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "tenant-edge.selectorLabels" . }}
app.kubernetes.io/component: {{ .Values.type }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
serviceradar.io/tenant: {{ .Values.tenant }}
{{- end }}

{{- define "tenant-edge.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default "latest" .Values.image.tag) }}
{{- end }}
{{- end }}

{{- define "tenant-edge.certSecret" -}}
{{- if .Values.certificate.certManager.enabled }}
{{- printf "%s-tls" (include "tenant-edge.fullname" .) }}
{{- else }}
{{- default (printf "%s-tls" (include "tenant-edge.fullname" .)) .Values.certificate.existingSecret }}
{{- end }}
{{- end }}

{{- define "tenant-edge.configMap" -}}
{{- default (printf "%s-config" (include "tenant-edge.fullname" .)) .Values.config.existingConfigMap }}
{{- end }}

{{/* The subjects an onboarding package's config.yaml gives the type (onboarding/templates/config). */}}
{{- define "tenant-edge.defaultSubjects" -}}
{{- $c := .Values.component }}
{{- if eq .Values.type "agent" }}
{{- toYaml (dict "publish" (dict "events" (printf "events.agent.%s" $c) "health" "events.agent.health" "logs" (printf "logs.agent.%s" $c)) "subscribe" (dict "jobs" (printf "jobs.%s" $c))) }}
{{- else if eq .Values.type "poller" }}
{{- toYaml (dict "publish" (dict "health" "events.poller.health" "results" (printf "events.poller.%s" $c) "snmp" (printf "snmp.poller.%s" $c)) "subscribe" (dict "jobs" (printf "jobs.%s" $c))) }}
{{- else if eq .Values.type "checker" }}
{{- toYaml (dict "publish" (dict "results" (printf "events.checker.%s" $c) "health" "events.checker.health") "service" (printf "svc.checker.%s" $c)) }}
{{- else }}
{{- toYaml (dict "publish" (dict "traces" "otel.traces" "metrics" "otel.metrics" "logs" "logs.otel")) }}
{{- end }}
{{- end }}

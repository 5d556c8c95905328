{{/* Names and labels. */}}
{{- define "tenant-gateway.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "tenant-gateway.fullname" -}}
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

{{- define "tenant-gateway.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tenant-gateway.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "tenant-gateway.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "tenant-gateway.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "tenant-gateway.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- define "tenant-gateway.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "tenant-gateway.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The platform part of the data plane. */}}
{{- define "tenant-gateway.platformSecret" -}}
{{- default (printf "%s-dataplane" (include "tenant-gateway.fullname" .)) .Values.dataPlane.platformSecret }}
{{- end }}

{{/* A tenant's data-plane Secret: (dict "tenant" $t). */}}
{{- define "tenant-gateway.tenantSecret" -}}
{{- default (printf "tenant-%s-dataplane" .tenant.slug) .tenant.dataPlaneSecret }}
{{- end }}

{{/* A tenant's CA Secret, as `tenant-gateway pki k8s-secret` names it: (dict "tenant" $t). */}}
{{- define "tenant-gateway.caSecret" -}}
{{- default (printf "tenant-%s-ca" .tenant.slug) .tenant.caSecret }}
{{- end }}

{{- define "tenant-gateway.gatewayUrl" -}}
{{- default (printf "tls://%s.%s.svc:%d" (include "tenant-gateway.fullname" .) .Release.Namespace (int .Values.service.natsPort)) .Values.edgeConfig.gatewayUrl }}
{{- end }}

{{/* The termination grace: longer than the drain, or the chart refuses to render. */}}
{{- define "tenant-gateway.terminationGraceSeconds" -}}
{{- $drain := div (add (int .Values.gateway.drainTimeoutMs) 999) 1000 }}
{{- if kindIs "invalid" .Values.terminationGracePeriodSeconds }}
{{- add $drain 10 }}
{{- else if le (int .Values.terminationGracePeriodSeconds) $drain }}
{{- fail (printf "terminationGracePeriodSeconds (%d) must be longer than the drain (gateway.drainTimeoutMs %d ms): Kubernetes would kill the pod while clients are still leaving" (int .Values.terminationGracePeriodSeconds) (int .Values.gateway.drainTimeoutMs)) }}
{{- else }}
{{- int .Values.terminationGracePeriodSeconds }}
{{- end }}
{{- end }}

{{/* The gateway's config file (gateway/config.ts validates it at start). */}}
{{- define "tenant-gateway.config" -}}
{{- $config := dict
  "listen" "0.0.0.0:4222"
  "http_listen" (printf "0.0.0.0:%d" (int .Values.http.port))
  "nats" .Values.nats.urls
  "data_dir" "/data"
  "store" "dir"
  "sync_on_start" false
  "workers" (int .Values.workers)
  "drain_timeout_ms" (int .Values.gateway.drainTimeoutMs)
  "log_level" .Values.gateway.logLevel
  "tls_first" .Values.gateway.tlsFirst
  "max_payload" (int .Values.gateway.maxPayload)
  "slow_consumer_ms" (int .Values.gateway.slowConsumerMs)
  "handshake_timeout_ms" (int .Values.gateway.handshakeTimeoutMs)
  "audit_max_age" .Values.gateway.auditMaxAge
  "platform" (dict "allowed_identities" .Values.gateway.allowedPlatformIdentities)
}}
{{- if .Values.leaf.enabled }}
{{- $_ := set $config "leaf_listen" (printf "0.0.0.0:%d" (int .Values.leaf.port)) }}
{{- $_ := set $config "leaf_nats" .Values.leaf.natsUrls }}
{{- $_ := set $config "leaf_jetstream_domain" .Values.leaf.jetstreamDomain }}
{{- end }}
{{- toYaml (mergeOverwrite $config .Values.gateway.extraConfig) }}
{{- end }}

{{/* The provisioning Job's TENANTS: slug:plan:status … */}}
{{- define "tenant-gateway.provisioningTenants" -}}
{{- $entries := list }}
{{- range .Values.tenants }}
{{- $entries = append $entries (printf "%s:%s:%s" .slug (default "pro" .plan) (default "active" .status)) }}
{{- end }}
{{- join " " $entries }}
{{- end }}

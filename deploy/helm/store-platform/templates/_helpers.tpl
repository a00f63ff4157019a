{{/* Labels every object of the chart carries. */}}
{{- define "store-platform.labels" -}}
app.kubernetes.io/part-of: store-platform
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end }}

{{/* The selector labels of one component: (dict "root" $ "component" "gateway"). */}}
{{- define "store-platform.selector" -}}
app.kubernetes.io/name: {{ .component }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- end }}

{{/* The labels of one component's objects: the chart's labels and its selector labels, each key once. */}}
{{- define "store-platform.componentLabels" -}}
app.kubernetes.io/part-of: store-platform
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{ include "store-platform.selector" . }}
{{- end }}

{{/* A platform image: (dict "root" $ "name" "gateway"). */}}
{{- define "store-platform.image" -}}
{{- $images := .root.Values.images -}}
{{- printf "%s%s:%s" $images.registry (index $images .name) $images.tag -}}
{{- end }}

{{/* A store image (WordPress, MariaDB): the registry prefix applies to our own images only. */}}
{{- define "store-platform.storeImage" -}}
{{- $image := index .root.Values.images .name -}}
{{- if hasPrefix "store-platform/" $image -}}
{{- printf "%s%s" .root.Values.images.registry $image -}}
{{- else -}}
{{- $image -}}
{{- end -}}
{{- end }}

{{/*
Probes for a gRPC server on `port`: readiness asks for `service` (SERVING only once it can do its work, e.g. after
the first sync with Kubernetes), liveness for the server as a whole (so an unreachable API server never restarts a
pod). gRPC probes exist from Kubernetes 1.24; before, the image's grpc-health-check binary runs as an exec probe.
*/}}
{{- define "store-platform.probes" -}}
{{- $grpc := semverCompare ">=1.24.0-0" .root.Capabilities.KubeVersion.Version -}}
{{- $probes := dict
  "readinessProbe" (dict "service" .service "period" 5 "failures" 3 "delay" 2)
  "livenessProbe" (dict "service" "" "period" 10 "failures" 6 "delay" 10) -}}
{{- range $kind, $p := $probes }}
{{ $kind }}:
  {{- if $grpc }}
  grpc:
    port: {{ $.port }}
    {{- if $p.service }}
    service: {{ $p.service }}
    {{- end }}
  {{- else }}
  exec:
    command: ["/usr/local/bin/grpc-health-check", "127.0.0.1:{{ $.port }}"{{ if $p.service }}, {{ $p.service | quote }}{{ end }}]
  {{- end }}
  initialDelaySeconds: {{ $p.delay }}
  periodSeconds: {{ $p.period }}
  timeoutSeconds: 3
  failureThreshold: {{ $p.failures }}
{{- end }}
{{- end }}

{{/* The hardened security contexts every platform pod uses. */}}
{{- define "store-platform.podSecurity" -}}
securityContext:
  runAsNonRoot: true
  runAsUser: 65532
  runAsGroup: 65532
  fsGroup: 65532
  seccompProfile:
    type: RuntimeDefault
{{- end }}

{{- define "store-platform.containerSecurity" -}}
securityContext:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  privileged: false
  capabilities:
    drop: ["ALL"]
{{- end }}

{{/* Environment every service shares. */}}
{{- define "store-platform.commonEnv" -}}
- name: LOG_FORMAT
  value: {{ .Values.logFormat | quote }}
- name: LOG_FILTER
  value: {{ .Values.logFilter | quote }}
{{- end }}

{{/* The PodDisruptionBudget API this cluster serves: policy/v1 from Kubernetes 1.21. */}}
{{- define "store-platform.pdbApiVersion" -}}
{{- if semverCompare ">=1.21.0-0" .Capabilities.KubeVersion.Version -}}
policy/v1
{{- else -}}
policy/v1beta1
{{- end -}}
{{- end }}

{{- /* The namespace people's sign-in sessions are kept in. */ -}}
{{- define "store-platform.sessionNamespace" -}}
{{- .Values.gateway.oidc.sessionNamespace | default (printf "%s-sessions" .Release.Namespace) -}}
{{- end }}

{{- /* The dashboard's address as browsers reach it. */ -}}
{{- define "store-platform.publicUrl" -}}
{{- .Values.gateway.publicUrl | default (printf "%s://dashboard.%s" (ternary "https" "http" .Values.tls.enabled) .Values.domain) -}}
{{- end }}

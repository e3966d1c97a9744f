{{/* Chart name, truncated to the 63-character DNS label limit. */}}
{{- define "postern.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Object name prefix. Component names are appended ("-ingress", "-delivery-<pool>"), so keep it short:
truncated to 40 characters leaves room for the longest suffix within 63.
*/}}
{{- define "postern.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "postern.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels; call with (dict "ctx" $ "component" "ingress"). */}}
{{- define "postern.selectorLabels" -}}
app.kubernetes.io/name: {{ include "postern.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Standard labels; call with (dict "ctx" $ "component" "ingress"). */}}
{{- define "postern.labels" -}}
helm.sh/chart: {{ include "postern.chart" .ctx }}
{{ include "postern.selectorLabels" . }}
app.kubernetes.io/part-of: postern
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
{{- end }}

{{/* Labels matching every Postern pod of this release (for NetworkPolicy peers and the metrics Service). */}}
{{- define "postern.instanceLabels" -}}
app.kubernetes.io/name: {{ include "postern.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "postern.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "postern.serviceAccountName" -}}
{{- if .ctx.Values.serviceAccount.create }}
{{- printf "%s-%s" (include "postern.fullname" .ctx) .component }}
{{- else }}
{{- "default" }}
{{- end }}
{{- end }}

{{/* Client URL(s) of NATS: the external cluster or the bundled client Service. */}}
{{- define "postern.natsUrl" -}}
{{- if .Values.nats.external.url }}
{{- .Values.nats.external.url }}
{{- else }}
{{- printf "nats://%s-nats.%s.svc:4222" (include "postern.fullname" .) .Release.Namespace }}
{{- end }}
{{- end }}

{{/* JetStream stream replicas: explicit, else 3 on a (bundled or external) cluster, else 1. */}}
{{- define "postern.streamReplicas" -}}
{{- if gt (int .Values.nats.streamReplicas) 0 }}
{{- int .Values.nats.streamReplicas }}
{{- else if .Values.nats.external.url }}
{{- 3 }}
{{- else if ge (int .Values.nats.replicas) 3 }}
{{- 3 }}
{{- else }}
{{- 1 }}
{{- end }}
{{- end }}

{{/* Environment every Postern process reads (services/common/env.ts). */}}
{{- define "postern.commonEnv" -}}
- name: NATS_URL
  value: {{ include "postern.natsUrl" . | quote }}
- name: POSTERN_STREAM_REPLICAS
  value: {{ include "postern.streamReplicas" . | quote }}
- name: POSTERN_METRICS_HOST
  value: "0.0.0.0"
- name: POSTERN_METRICS_PORT
  value: {{ .Values.metrics.port | quote }}
- name: LOG_LEVEL
  value: {{ .Values.logLevel | quote }}
- name: POSTERN_HOSTNAME
  value: {{ .Values.hostname | quote }}
{{- with .Values.dnsServers }}
- name: POSTERN_DNS_SERVERS
  value: {{ join "," . | quote }}
{{- end }}
{{- /* V8 caps (docs/bench.md "Memory"): the old space bounds garbage, the semi-space bounds the young generation,
  which V8 otherwise grows to 64-128 MB under load and keeps resident. */}}
{{- $v8 := list }}
{{- if .Values.nodeHeapMiB }}{{ $v8 = append $v8 (printf "--max-old-space-size=%d" (int .Values.nodeHeapMiB)) }}{{ end }}
{{- if .Values.nodeSemiSpaceMiB }}{{ $v8 = append $v8 (printf "--max-semi-space-size=%d" (int .Values.nodeSemiSpaceMiB)) }}{{ end }}
{{- with $v8 }}
- name: NODE_OPTIONS
  value: {{ join " " . | quote }}
{{- end }}
{{- /* glibc's per-thread malloc arenas each keep their freed memory; two serve one event loop (docs/bench.md). */}}
{{- if .Values.mallocArenaMax }}
- name: MALLOC_ARENA_MAX
  value: {{ .Values.mallocArenaMax | quote }}
{{- end }}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
{{- end }}

{{/* Telemetry port and probes: /healthz = process alive, /readyz = NATS (and config) ready. */}}
{{- define "postern.metricsPort" -}}
- name: metrics
  containerPort: {{ .Values.metrics.port }}
  protocol: TCP
{{- end }}

{{- define "postern.probes" -}}
startupProbe:
  httpGet:
    path: /healthz
    port: metrics
  periodSeconds: 2
  failureThreshold: 60
livenessProbe:
  httpGet:
    path: /healthz
    port: metrics
  periodSeconds: 10
  timeoutSeconds: 3
  failureThreshold: 3
readinessProbe:
  httpGet:
    path: /readyz
    port: metrics
  periodSeconds: 5
  timeoutSeconds: 3
  failureThreshold: 2
{{- end }}

{{/* Node runs with a read-only root file system; it still needs a writable /tmp. */}}
{{- define "postern.tmpVolumeMount" -}}
- name: tmp
  mountPath: /tmp
{{- end }}
{{- define "postern.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
{{- end }}

{{/* Default soft spread over nodes; call with (dict "ctx" $ "component" "x" "value" .topologySpreadConstraints). */}}
{{- define "postern.topologySpread" -}}
{{- if .value }}
topologySpreadConstraints:
  {{- toYaml .value | nindent 2 }}
{{- else }}
topologySpreadConstraints:
  - maxSkew: 1
    topologyKey: kubernetes.io/hostname
    whenUnsatisfiable: ScheduleAnyway
    labelSelector:
      matchLabels:
        {{- include "postern.selectorLabels" (dict "ctx" .ctx "component" .component) | nindent 8 }}
{{- end }}
{{- end }}

{{/* Scheduling knobs shared by the Postern Deployments; call with the component's values. */}}
{{- define "postern.scheduling" -}}
{{- with .nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* The delivery Deployment name of a pool; the operator's POSTERN_POOLS refers to it. */}}
{{- define "postern.poolDeployment" -}}
{{- printf "%s-delivery-%s" (include "postern.fullname" .ctx) .pool | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* POSTERN_POOLS for the operator's autoscaler, built from the same values as the pool Deployments. */}}
{{- define "postern.poolsJson" -}}
{{- $pools := list }}
{{- range .Values.delivery.pools }}
{{- $pools = append $pools (dict
  "name" .name
  "deployment" (include "postern.poolDeployment" (dict "ctx" $ "pool" .name))
  "namespace" $.Release.Namespace
  "minReplicas" (int .minReplicas)
  "maxReplicas" (int .maxReplicas)
  "targetPerReplica" (int .targetPerReplica)
  "scaleDownStabilizationSeconds" (int (ternary .scaleDownStabilizationSeconds $.Values.delivery.scaleDownStabilizationSeconds (hasKey . "scaleDownStabilizationSeconds")))
) }}
{{- end }}
{{- toJson $pools }}
{{- end }}

{{/* Listener mode of each SMTP listener (services/ingress/settings.ts). */}}
{{- define "postern.listenerModes" -}}
{{- dict "smtp" "relay" "submission" "submission" "smtps" "smtps" | toJson }}
{{- end }}

{{/*
Names of the listeners that run, as a JSON list: enabled ones, except smtps (implicit TLS, RFC 8314) without a
TLS Secret, which could not start; NOTES.txt says so.
*/}}
{{- define "postern.activeListeners" -}}
{{- $out := list }}
{{- range $name := list "smtp" "submission" "smtps" }}
{{- $l := index $.Values.ingress.listeners $name }}
{{- if and $l.enabled (or (ne $name "smtps") $.Values.ingress.tls.secretName) }}
{{- $out = append $out $name }}
{{- end }}
{{- end }}
{{- toJson $out }}
{{- end }}

{{/* POSTERN_INGRESS_LISTENERS: every active listener on all interfaces of the pod. */}}
{{- define "postern.ingressListenersJson" -}}
{{- $modes := include "postern.listenerModes" . | fromJson }}
{{- $out := list }}
{{- range $name := include "postern.activeListeners" . | fromJsonArray }}
{{- $l := index $.Values.ingress.listeners $name }}
{{- if true }}
{{- $out = append $out (dict "name" $name "host" "0.0.0.0" "port" (int $l.containerPort) "mode" (index $modes $name) "proxyProtocol" $l.proxyProtocol "dnsbl" (eq ($l.dnsbl | toString) "true") "contentFilter" (ne ($l.contentFilter | toString) "false")) }}
{{- end }}
{{- end }}
{{- toJson $out }}
{{- end }}

{{/*
NATS security: one NATS user per component with only the subjects its code uses, TLS to NATS, the secrets key.
docs/chart.md "NATS security" explains each list; test/operator/nats-lockdown.test.ts runs a real nats-server
with the rendered configuration and checks every component can do its job and nothing more.

Adding a component is one entry in "postern.natsPermissions" below; its Deployment then
includes "postern.natsClientEnv", "postern.natsClientVolumeMounts" and "postern.natsClientVolumes" with its
user name.
*/}}

{{/* Whether the bundled NATS runs with users and permissions. */}}
{{- define "postern.natsAuth" -}}
{{- if and (not .Values.nats.external.url) .Values.nats.auth.enabled }}true{{ end }}
{{- end }}

{{/* Whether clients talk TLS to the bundled NATS. */}}
{{- define "postern.natsTls" -}}
{{- if and (not .Values.nats.external.url) .Values.nats.tls.enabled }}true{{ end }}
{{- end }}

{{/* Secret with tls.crt, tls.key and ca.crt for NATS. */}}
{{- define "postern.natsTlsSecret" -}}
{{- .Values.nats.tls.secretName | default (printf "%s-nats-tls" (include "postern.fullname" .)) }}
{{- end }}

{{/*
Subjects each user may publish ("pub") and subscribe to ("sub"); everything else is denied. Replies come to the
user's own inbox prefix (NATS_INBOX_PREFIX=_INBOX_<user>), so no component reads another's replies (bodies,
config reads). Derived from a protocol trace of the services (docs/chart.md); `$JS.API.*` are JetStream's API.
Call with the root context; returns YAML: a map user → {pub: [...], sub: [...]}.
*/}}
{{- define "postern.natsPermissions" -}}
{{- /* Everyone: check the JetStream API, see that streams exist, read and watch the config bucket. */}}
{{- $read := list
  "$JS.API.INFO"
  "$JS.API.STREAM.INFO.*"
  "$JS.API.CONSUMER.CREATE.KV_config.>"
  "$JS.API.CONSUMER.DELETE.KV_config.*"
  "$JS.API.CONSUMER.INFO.KV_config.*"
  "$JS.API.DIRECT.GET.KV_config.>"
  "$JS.API.STREAM.MSG.GET.KV_config"
  "$JS.FC.>"
}}
{{- /* Loading a message body: the BODIES stream (leader get) or the object store (chunks via an ordered consumer). */}}
{{- $bodyRead := list
  "$JS.API.DIRECT.GET.BODIES.>"
  "$JS.API.STREAM.MSG.GET.BODIES"
  "$JS.API.DIRECT.GET.OBJ_bodies.>"
  "$JS.API.STREAM.MSG.GET.OBJ_bodies"
  "$JS.API.CONSUMER.CREATE.OBJ_bodies.>"
  "$JS.API.CONSUMER.DELETE.OBJ_bodies.*"
}}
{{- $users := dict }}
{{- /* Routing at receipt (services/common/submit.ts, the lean path): a direct job on any pool's OUTBOUND subject,
     after a look at the suppression list. */}}
{{- $route := list
  "mail.out.>"
  "$JS.API.DIRECT.GET.KV_suppression.>"
  "$JS.API.STREAM.MSG.GET.KV_suppression"
}}
{{- /* Ingress: submissions and bodies in, per-client counters (CLIENT_RATE, AUTH_FAILURES). */}}
{{- $_ := set $users "ingress" (dict
  "pub" (concat $read $route (list
    "mail.submit.>"
    "mail.body.>"
    "$O.bodies.>"
    "$JS.API.DIRECT.GET.OBJ_bodies.>"
    "rate.client.>"
    "auth.fail.>"
    "$JS.API.DIRECT.GET.CLIENT_RATE.>"
    "$JS.API.DIRECT.GET.AUTH_FAILURES.>"
  ))
) }}
{{- /* HTTP API (when enabled): submits like ingress (services/common/submit.ts) under the per-client rate. */}}
{{- if .Values.api.enabled }}
{{- $_ := set $users "api" (dict
  "pub" (concat $read $route (list
    "mail.submit.>"
    "mail.body.>"
    "$O.bodies.>"
    "$JS.API.DIRECT.GET.OBJ_bodies.>"
    "rate.client.>"
    "$JS.API.DIRECT.GET.CLIENT_RATE.>"
  ))
) }}
{{- end }}
{{- /* Queue: consumes SUBMIT and RESULTS; publishes jobs, schedules, events and DSNs; message state,
     suppression, body deletion; queue depth and the admin API (hold/delete/retry purge scheduled jobs). */}}
{{- $_ := set $users "queue" (dict
  "pub" (concat $read $bodyRead (list
    "$JS.API.CONSUMER.CREATE.SUBMIT.queue-submit.>"
    "$JS.API.CONSUMER.INFO.SUBMIT.queue-submit"
    "$JS.API.CONSUMER.MSG.NEXT.SUBMIT.queue-submit"
    "$JS.ACK.SUBMIT.queue-submit.>"
    "$JS.API.CONSUMER.CREATE.RESULTS.queue-results.>"
    "$JS.API.CONSUMER.INFO.RESULTS.queue-results"
    "$JS.API.CONSUMER.MSG.NEXT.RESULTS.queue-results"
    "$JS.ACK.RESULTS.queue-results.>"
    "$JS.API.CONSUMER.INFO.OUTBOUND.*"
    "$JS.API.CONSUMER.LIST.*"
    "mail.out.>"
    "mail.sched.>"
    "mail.event.>"
    "mail.submit.>"
    "$JS.API.STREAM.PURGE.OUTBOUND"
    "$JS.API.STREAM.PURGE.BODIES"
    "$JS.API.STREAM.PURGE.OBJ_bodies"
    "$O.bodies.>"
    "$KV.messages.>"
    "$JS.API.DIRECT.GET.KV_messages.>"
    "$JS.API.STREAM.MSG.GET.KV_messages"
    "$JS.API.CONSUMER.CREATE.KV_messages.>"
    "$JS.API.CONSUMER.INFO.KV_messages.*"
    "$JS.API.CONSUMER.DELETE.KV_messages.*"
    "$KV.suppression.>"
    "$JS.API.DIRECT.GET.KV_suppression.>"
    "$JS.API.STREAM.MSG.GET.KV_suppression"
    "$KV.sites.>"
    "$JS.API.STREAM.CREATE.KV_sites"
    "$JS.API.DIRECT.GET.KV_sites.>"
    "$JS.API.STREAM.MSG.GET.KV_sites"
    "$JS.API.CONSUMER.CREATE.KV_sites.>"
    "$JS.API.CONSUMER.INFO.KV_sites.*"
    "$JS.API.CONSUMER.DELETE.KV_sites.*"
    "$JS.API.DIRECT.GET.KV_site-leases.>"
    "$JS.API.STREAM.MSG.GET.KV_site-leases"
    "$JS.API.CONSUMER.CREATE.KV_site-leases.>"
    "$JS.API.CONSUMER.INFO.KV_site-leases.*"
    "$JS.API.CONSUMER.DELETE.KV_site-leases.*"
  ))
) }}
{{- /* Operator: owns the JetStream topology (creates and updates streams, buckets and each pool's consumer),
     writes the config bucket, reads pool consumer info for the autoscaler. No mail subjects. */}}
{{- $_ := set $users "operator" (dict
  "pub" (concat $read (list
    "$JS.API.STREAM.CREATE.*"
    "$JS.API.STREAM.UPDATE.*"
    "$JS.API.CONSUMER.CREATE.OUTBOUND.>"
    "$JS.API.CONSUMER.INFO.OUTBOUND.*"
    "$KV.config.>"
    "$KV.webhooks.>"
    "$JS.API.DIRECT.GET.KV_webhooks.>"
    "$JS.API.STREAM.MSG.GET.KV_webhooks"
    "$JS.API.CONSUMER.CREATE.KV_webhooks.>"
    "$JS.API.CONSUMER.INFO.KV_webhooks.*"
    "$JS.API.CONSUMER.DELETE.KV_webhooks.*"
  ))
) }}
{{- /* Webhooks (when enabled): one durable consumer per endpoint on EVENTS (names webhook-<token>; NATS
     wildcards are whole tokens, so any consumer name on EVENTS), the Webhook documents, dead letters. */}}
{{- if .Values.webhooks.enabled }}
{{- $_ := set $users "webhooks" (dict
  "pub" (concat $read (list
    "$JS.API.CONSUMER.CREATE.EVENTS.*"
    "$JS.API.CONSUMER.CREATE.EVENTS.*.>"
    "$JS.API.CONSUMER.DURABLE.CREATE.EVENTS.*"
    "$JS.API.CONSUMER.INFO.EVENTS.*"
    "$JS.API.CONSUMER.DELETE.EVENTS.*"
    "$JS.API.CONSUMER.LIST.EVENTS"
    "$JS.API.CONSUMER.NAMES.EVENTS"
    "$JS.API.CONSUMER.MSG.NEXT.EVENTS.*"
    "$JS.ACK.EVENTS.>"
    "$JS.API.CONSUMER.CREATE.KV_webhooks.>"
    "$JS.API.CONSUMER.INFO.KV_webhooks.*"
    "$JS.API.CONSUMER.DELETE.KV_webhooks.*"
    "$JS.API.DIRECT.GET.KV_webhooks.>"
    "$JS.API.STREAM.MSG.GET.KV_webhooks"
    "webhook.dead.>"
  ))
) }}
{{- end }}
{{- /* Delivery, one user per pool: its own consumer, results and re-schedules of its pool, site state and
     leases, MTA-STS cache, TLS-RPT (sessions stream, report claims, the report mail it submits); for a direct job
     it settles itself (all delivered) the received/delivered events and the body deletion; an attached body it
     stores when the job leaves as JSON (a result for the queue, a site wait). */}}
{{- range .Values.delivery.pools }}
{{- $c := printf "delivery-%s" .name }}
{{- $_ := set $users $c (dict
  "pub" (concat $read $bodyRead (list
    (printf "$JS.API.CONSUMER.CREATE.OUTBOUND.%s.>" $c)
    (printf "$JS.API.CONSUMER.INFO.OUTBOUND.%s" $c)
    (printf "$JS.API.CONSUMER.MSG.NEXT.OUTBOUND.%s" $c)
    (printf "$JS.ACK.OUTBOUND.%s.>" $c)
    (printf "mail.result.%s" .name)
    (printf "mail.sched.%s.>" .name)
    "mail.event.site.>"
    "mail.event.received"
    "mail.event.delivered"
    "mail.body.>"
    "$JS.API.STREAM.PURGE.BODIES"
    "$JS.API.STREAM.PURGE.OBJ_bodies"
    "$O.bodies.>"
    "$KV.sites.>"
    "$KV.site-leases.>"
    "$KV.mta-sts.>"
    "$KV.tlsrpt.>"
    "$JS.API.STREAM.CREATE.KV_sites"
    "$JS.API.STREAM.CREATE.KV_site-leases"
    "$JS.API.STREAM.CREATE.KV_mta-sts"
    "$JS.API.STREAM.CREATE.KV_tlsrpt"
    "$JS.API.STREAM.CREATE.TLSRPT"
    "$JS.API.DIRECT.GET.KV_sites.>"
    "$JS.API.DIRECT.GET.KV_site-leases.>"
    "$JS.API.DIRECT.GET.KV_mta-sts.>"
    "$JS.API.DIRECT.GET.KV_tlsrpt.>"
    "$JS.API.STREAM.MSG.GET.KV_sites"
    "$JS.API.STREAM.MSG.GET.KV_site-leases"
    "$JS.API.STREAM.MSG.GET.KV_mta-sts"
    "$JS.API.STREAM.MSG.GET.KV_tlsrpt"
    "$JS.API.CONSUMER.CREATE.KV_sites.>"
    "$JS.API.CONSUMER.INFO.KV_sites.*"
    "$JS.API.CONSUMER.DELETE.KV_sites.*"
    "mail.tlsrpt.>"
    "$JS.API.CONSUMER.CREATE.TLSRPT.>"
    "$JS.API.CONSUMER.INFO.TLSRPT.*"
    "$JS.API.CONSUMER.DELETE.TLSRPT.*"
    "mail.submit.>"
  ))
) }}
{{- end }}
{{- range $name, $p := $users }}
{{- $_ := set $p "sub" (list (printf "_INBOX_%s.>" $name)) }}
{{- end }}
{{- toYaml $users }}
{{- end }}

{{/* The env variable nats.conf reads a user's bcrypt hash from. */}}
{{- define "postern.natsHashEnv" -}}
NATS_BCRYPT_{{ . | upper | replace "-" "_" }}
{{- end }}

{{/*
Passwords (and their bcrypt hashes for nats.conf) per user, kept across upgrades: an existing Secret's values
are reused (lookup), so `helm upgrade` does not change credentials under running pods. Returns YAML data.
*/}}
{{- define "postern.natsAuthData" -}}
{{- $existing := (lookup "v1" "Secret" .Release.Namespace (printf "%s-nats-auth" (include "postern.fullname" .))).data | default dict }}
{{- $data := dict }}
{{- range $user, $_ := (include "postern.natsPermissions" . | fromYaml) }}
{{- $pass := get $existing $user | default "" | b64dec }}
{{- $hash := get $existing (printf "%s.bcrypt" $user) | default "" | b64dec }}
{{- if not $pass }}
{{- $pass = randAlphaNum 40 }}
{{- $hash = bcrypt $pass }}
{{- end }}
{{- $_ := set $data $user $pass }}
{{- $_ := set $data (printf "%s.bcrypt" $user) $hash }}
{{- end }}
{{- toYaml $data }}
{{- end }}

{{/* NATS connection settings of a component; call with (dict "ctx" $ "user" "ingress"). */}}
{{- define "postern.natsClientEnv" -}}
{{- $ctx := .ctx }}
{{- if include "postern.natsAuth" $ctx }}
- name: NATS_USER
  value: {{ .user | quote }}
- name: NATS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "postern.fullname" $ctx }}-nats-auth
      key: {{ .user | quote }}
- name: NATS_INBOX_PREFIX
  value: {{ printf "_INBOX_%s" .user | quote }}
{{- if ne .user "operator" }}
# Only the operator may create or change streams; the others wait until they exist.
- name: POSTERN_NATS_TOPOLOGY
  value: verify
{{- end }}
{{- end }}
{{- if include "postern.natsTls" $ctx }}
- name: NATS_TLS_CA_FILE
  value: /etc/postern/nats-ca/ca.crt
{{- end }}
{{- end }}

{{/* The CA of NATS's certificate, mounted into a component (only ca.crt, never the key). */}}
{{- define "postern.natsClientVolumeMounts" -}}
{{- if include "postern.natsTls" . }}
- name: nats-ca
  mountPath: /etc/postern/nats-ca
  readOnly: true
{{- end }}
{{- end }}
{{- define "postern.natsClientVolumes" -}}
{{- if include "postern.natsTls" . }}
- name: nats-ca
  secret:
    secretName: {{ include "postern.natsTlsSecret" . }}
    items:
      - key: ca.crt
        path: ca.crt
{{- end }}
{{- end }}

{{/* The secrets key (services/common/secrets.ts) for the components that seal or open secrets. */}}
{{- define "postern.secretsKeySecret" -}}
{{- .Values.secretsKey.existingSecret | default (printf "%s-secrets-key" (include "postern.fullname" .)) }}
{{- end }}
{{- define "postern.secretsKeyEnv" -}}
- name: POSTERN_SECRETS_KEY_FILE
  value: /etc/postern/secrets-key/key
{{- end }}
{{- define "postern.secretsKeyVolumeMount" -}}
- name: secrets-key
  mountPath: /etc/postern/secrets-key
  readOnly: true
{{- end }}
{{- define "postern.secretsKeyVolume" -}}
- name: secrets-key
  secret:
    secretName: {{ include "postern.secretsKeySecret" . }}
    items:
      - key: key
        path: key
{{- end }}

{{/* DNS names in NATS's certificate: the client Service and every server behind the headless Service. */}}
{{- define "postern.natsTlsNames" -}}
{{- $f := include "postern.fullname" . }}
{{- $ns := .Release.Namespace }}
- {{ printf "%s-nats" $f | quote }}
- {{ printf "%s-nats.%s" $f $ns | quote }}
- {{ printf "%s-nats.%s.svc" $f $ns | quote }}
- {{ printf "%s-nats.%s.svc.cluster.local" $f $ns | quote }}
- {{ printf "*.%s-nats-headless.%s.svc" $f $ns | quote }}
- {{ printf "*.%s-nats-headless.%s.svc.cluster.local" $f $ns | quote }}
{{- end }}

{{/* Names, labels, images and addresses shared by every template. */}}

{{- define "intervene.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "intervene.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The services the chart deploys, in a fixed order. */}}
{{- define "intervene.services" -}}
generation judge intervention pairstore
{{- end -}}

{{- define "intervene.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "intervene.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: intervene
{{- end -}}

{{/* Selector labels of one component: call with (dict "root" $ "component" "judge"). */}}
{{- define "intervene.selectorLabels" -}}
app.kubernetes.io/name: {{ include "intervene.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Labels that let a pod through the NetworkPolicies of Redis and the internal services. */}}
{{- define "intervene.clientLabels" -}}
intervene.dev/redis-client: "true"
{{- end -}}

{{- define "intervene.componentName" -}}
{{- printf "%s-%s" (include "intervene.fullname" .root) .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The image of a component: (dict "root" $ "gpu" <gpu values or nil>). The tag is pinned: appVersion by default. */}}
{{- define "intervene.image" -}}
{{- $tag := default .root.Chart.AppVersion .root.Values.image.tag -}}
{{- if and .gpu .gpu.enabled -}}
{{- $tag = printf "%s%s" $tag .gpu.imageTagSuffix -}}
{{- end -}}
{{- printf "%s:%s" .root.Values.image.repository $tag -}}
{{- end -}}

{{- define "intervene.secretName" -}}
{{- default (printf "%s-secrets" (include "intervene.fullname" .)) .Values.auth.existingSecret -}}
{{- end -}}

{{- define "intervene.redisHost" -}}
{{- printf "%s-redis" (include "intervene.fullname" .) -}}
{{- end -}}

{{/* The Redis URL without its password (services read the password from the Secret's file). */}}
{{- define "intervene.redisUrl" -}}
{{- if .Values.redis.enabled -}}
{{- printf "redis://%s:6379/0" (include "intervene.redisHost" .) -}}
{{- else -}}
{{- .Values.redis.external.url -}}
{{- end -}}
{{- end -}}

{{/* host:port of a service inside the cluster: (dict "root" $ "component" "pairstore"). */}}
{{- define "intervene.address" -}}
{{- $values := index .root.Values .component -}}
{{- printf "%s:%d" (include "intervene.componentName" .) (int $values.port) -}}
{{- end -}}

{{/* Where the Secret's keys are mounted in every pod. */}}
{{- define "intervene.secretDir" -}}/var/run/secrets/intervene{{- end -}}

{{/* Environment every service shares: listening, Redis, tokens (as files), peers, limits. */}}
{{- define "intervene.commonEnv" -}}
- name: INTERVENE_HOST
  value: "0.0.0.0"
- name: INTERVENE_METRICS_PORT
  value: {{ .root.Values.settings.metricsPort | quote }}
- name: INTERVENE_REDIS_URL
  value: {{ include "intervene.redisUrl" .root | quote }}
{{- if .root.Values.redis.auth.enabled }}
- name: INTERVENE_REDIS_PASSWORD_FILE
  value: {{ include "intervene.secretDir" . }}/redis-password
{{- end }}
- name: INTERVENE_AUTH_TOKEN_FILE
  value: {{ include "intervene.secretDir" . }}/auth-token
- name: INTERVENE_READ_TOKEN_FILE
  value: {{ include "intervene.secretDir" . }}/read-token
- name: INTERVENE_DRAIN_SECONDS
  value: {{ .root.Values.settings.drainSeconds | toString | quote }}
- name: INTERVENE_MAX_MESSAGE_BYTES
  value: {{ .root.Values.settings.maxMessageBytes | int64 | toString | quote }}
- name: INTERVENE_LOG_LEVEL
  value: {{ .root.Values.settings.logLevel | quote }}
{{- with .root.Values.tracing }}
{{- if .enabled }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ .endpoint | quote }}
- name: OTEL_SERVICE_NAME
  value: {{ printf "intervene-%s" $.component | quote }}
- name: OTEL_TRACES_SAMPLER
  value: {{ .sampler | quote }}
- name: OTEL_TRACES_SAMPLER_ARG
  value: {{ .samplerArg | toString | quote }}
- name: OTEL_RESOURCE_ATTRIBUTES
  value: {{ printf "k8s.namespace.name=%s" $.root.Release.Namespace | quote }}
{{- end }}
{{- end }}
{{- if eq .component "intervention" }}
{{- range $peer := list "generation" "judge" "pairstore" }}
- name: INTERVENE_{{ upper $peer }}_ADDRESS
  value: {{ include "intervene.peerAddress" (dict "root" $.root "component" $peer) | quote }}
{{- end }}
{{- end }}
{{- end -}}

{{/* A component's extra settings: a map of INTERVENE_* names to non-secret values. */}}
{{- define "intervene.extraEnv" -}}
{{- range $name, $value := . }}
- name: {{ $name }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- end -}}

{{- define "intervene.secretVolume" -}}
- name: secrets
  secret:
    secretName: {{ include "intervene.secretName" . }}
    defaultMode: 0440
    items:
      - {key: auth-token, path: auth-token}
      - {key: read-token, path: read-token}
      {{- if .Values.redis.auth.enabled }}
      - {key: redis-password, path: redis-password}
      {{- end }}
{{- end -}}

{{/* The PVC of the trainer's checkpoints and adapters (created by trainer.yaml unless existingClaim is set). */}}
{{- define "intervene.trainerClaim" -}}
{{- default (printf "%s-checkpoints" (include "intervene.componentName" (dict "root" . "component" "trainer"))) .Values.trainer.checkpoints.existingClaim -}}
{{- end -}}

{{/* The claim generation reads adapters from: generation.adaptersClaim, else the trainer's when it is enabled. */}}
{{- define "intervene.adaptersClaim" -}}
{{- if .Values.generation.adaptersClaim -}}
{{- .Values.generation.adaptersClaim -}}
{{- else if .Values.trainer.enabled -}}
{{- include "intervene.trainerClaim" . -}}
{{- end -}}
{{- end -}}

{{/* The pods' ServiceAccount: serviceAccount.name, else the fullname when the chart creates it, else `default`. */}}
{{- define "intervene.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "intervene.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The address a peer dials: dns:///<name>-headless:<port> (round_robin over its pods) or <name>:<port>. */}}
{{- define "intervene.peerAddress" -}}
{{- if .root.Values.loadBalancing.headless -}}
{{- $values := index .root.Values .component -}}
{{- printf "dns:///%s-headless:%d" (include "intervene.componentName" .) (int $values.port) -}}
{{- else -}}
{{- include "intervene.address" . -}}
{{- end -}}
{{- end -}}

{{/* HF_TOKEN from huggingface.tokenSecret, for the pods that download models. */}}
{{- define "intervene.hfTokenEnv" -}}
{{- with .Values.huggingface.tokenSecret.name }}
- name: HF_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $.Values.huggingface.tokenSecret.key }}
{{- end }}
{{- end -}}

{{/* The training job's name: one per adapter version, so a new run never collides with an old job. */}}
{{- define "intervene.trainerJobName" -}}
{{- printf "%s-%s" (include "intervene.componentName" (dict "root" . "component" "trainer")) .Values.trainer.adapterName -}}
{{- end -}}

{{/* The trainer container's environment (both training APIs). */}}
{{- define "intervene.trainerEnv" -}}
{{- $t := .Values.trainer -}}
- name: INTERVENE_TRAINER_MODEL
  value: {{ $t.model | quote }}
- name: INTERVENE_TRAINER_PAIR_STORE
  value: {{ include "intervene.address" (dict "root" . "component" "pairstore") | quote }}
- name: INTERVENE_TRAINER_PAIR_STORE_TOKEN_FILE
  value: {{ include "intervene.secretDir" . }}/read-token
- name: INTERVENE_TRAINER_OUTPUT_DIR
  value: /checkpoints
- name: INTERVENE_TRAINER_ADAPTER_NAME
  value: {{ $t.adapterName | quote }}
- name: INTERVENE_TRAINER_PROMOTE
  value: {{ $t.promote | quote }}
- name: INTERVENE_TRAINER_GENERATION_ADDRESS
  value: {{ include "intervene.address" (dict "root" . "component" "generation") | quote }}
- name: INTERVENE_TRAINER_GENERATION_TOKEN_FILE
  value: {{ include "intervene.secretDir" . }}/auth-token
- name: INTERVENE_TRAINER_PROGRESS
  value: "false"
- name: INTERVENE_TRAINER_METRICS_PORT
  value: {{ $t.metricsPort | quote }}
{{- if .Values.data.existingClaim }}
- name: INTERVENE_DATA_DIR
  value: {{ .Values.data.mountPath | quote }}
{{- end }}
{{- include "intervene.hfTokenEnv" . }}
{{- with $t.env }}{{ include "intervene.extraEnv" . }}{{ end }}
{{- end -}}

{{/* The trainer container's mounts (both training APIs). */}}
{{- define "intervene.trainerMounts" -}}
- {name: checkpoints, mountPath: /checkpoints}
- {name: tmp, mountPath: /tmp}
- {name: cache, mountPath: /cache}
- {name: shm, mountPath: /dev/shm}
- {name: secrets, mountPath: {{ include "intervene.secretDir" . }}, readOnly: true}
{{- if .Values.data.existingClaim }}
- {name: data, mountPath: {{ .Values.data.mountPath }}, readOnly: true}
{{- end }}
{{- end -}}

{{/* The trainer pod's spec but its containers (both training APIs; a TrainJob patches these onto its runtime). */}}
{{- define "intervene.trainerPodSpec" -}}
{{- $t := .Values.trainer -}}
serviceAccountName: {{ include "intervene.serviceAccountName" . }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
volumes:
  - name: checkpoints
    persistentVolumeClaim:
      claimName: {{ include "intervene.trainerClaim" . }}
  - name: tmp
    emptyDir: {sizeLimit: 4Gi}
  - name: cache
    emptyDir: {sizeLimit: 100Gi}
  # NCCL and DataLoader workers share memory through /dev/shm; the container default is 64 MiB.
  - name: shm
    emptyDir: {medium: Memory, sizeLimit: {{ $t.shmSize }}}
  {{- include "intervene.secretVolume" . | nindent 2 }}
  {{- if .Values.data.existingClaim }}
  - name: data
    persistentVolumeClaim:
      claimName: {{ .Values.data.existingClaim }}
      readOnly: true
  {{- end }}
{{- with $t.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $t.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $t.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Whether a component scales with a KEDA ScaledObject: keda.enabled, or its own <component>.keda.enabled. */}}
{{- define "intervene.kedaFor" -}}
{{- $values := index .root.Values .component -}}
{{- if and $values.enabled (or .root.Values.keda.enabled $values.keda.enabled) -}}true{{- end -}}
{{- end -}}

{{/* Whether any component scales with KEDA (its TriggerAuthentication and Redis access are then needed). */}}
{{- define "intervene.kedaUsed" -}}
{{- range $component := splitList " " (include "intervene.services" .) -}}
{{- include "intervene.kedaFor" (dict "root" $ "component" $component) -}}
{{- end -}}
{{- end -}}

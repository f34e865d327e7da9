{{/*
Names. The full name is cut to 40 characters: the StatefulSet's name must leave room in the
controller-revision-hash label (63 characters: name, a dash, a 10-character hash), and
`<fullname>-headless` and the pod names must stay DNS labels.
*/}}
{{- define "streamrec.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 40 | trimSuffix "-" }}
{{- end }}

{{- define "streamrec.fullname" -}}
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

{{/* The headless Service: pod DNS names for the advertised URLs, and the ServiceMonitor's target. */}}
{{- define "streamrec.headlessName" -}}
{{- printf "%s-headless" (include "streamrec.fullname" .) }}
{{- end }}

{{- define "streamrec.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "streamrec.selectorLabels" -}}
app.kubernetes.io/name: {{ include "streamrec.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
The service's pods: the Services, the PodDisruptionBudget and the StatefulSet select these, which the
hook Job's pod (component: topics) does not carry, so it is never an endpoint.
*/}}
{{- define "streamrec.serverSelectorLabels" -}}
{{ include "streamrec.selectorLabels" . }}
app.kubernetes.io/component: server
{{- end }}

{{- define "streamrec.labels" -}}
helm.sh/chart: {{ include "streamrec.chart" . }}
{{ include "streamrec.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | trunc 63 | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: streamrec
{{- end }}

{{- define "streamrec.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/* The dataset group, checked as the service checks it (config `group`). */}}
{{- define "streamrec.group" -}}
{{- $g := toString .Values.group }}
{{- if not (regexMatch "^[A-Za-z0-9_-]{1,60}$" $g) }}
{{- fail (printf "group: %q is not a dataset group name (1 to 60 of A-Z a-z 0-9 _ -)" $g) }}
{{- end }}
{{- $g }}
{{- end }}

{{- define "streamrec.secretName" -}}
{{- .Values.auth.existingSecret | default (printf "%s-root-key" (include "streamrec.fullname" .)) }}
{{- end }}

{{/*
A config value as the string an environment variable holds. Helm reads numbers in values files as
float64, and toString would print 1000000 as "1e+06", which the service rejects: whole numbers are
printed as integers.
*/}}
{{- define "streamrec.envString" -}}
{{- $v := . }}
{{- if and (kindIs "float64" $v) (eq (float64 (int64 $v)) $v) }}
{{- int64 $v | toString }}
{{- else }}
{{- toString $v }}
{{- end }}
{{- end }}

{{/*
KAFKA_BROKERS: required, and each entry `host:port` (the service's own rule, kafka.brokers), so a
typo fails the install here instead of in a crash-looping pod.
*/}}
{{- define "streamrec.brokers" -}}
{{- $b := include "streamrec.envString" (required "config.KAFKA_BROKERS is required: the Kafka cluster as host:port, comma-separated (e.g. --set config.KAFKA_BROKERS=kafka-0.kafka:9092); this chart starts no broker" .Values.config.KAFKA_BROKERS) }}
{{- range $entry := splitList "," $b }}
{{- if not (regexMatch "^[^\\s:,]+:[0-9]{1,5}$" $entry) }}
{{- fail (printf "config.KAFKA_BROKERS: %q is not host:port (in %q)" $entry $b) }}
{{- end }}
{{- end }}
{{- $b }}
{{- end }}

{{/* Settings the chart sets itself, per pod or from other values. */}}
{{- define "streamrec.reservedEnv" -}}
STREAMREC_INSTANCE_ID STREAMREC_API_ADVERTISED_URL STREAMREC_STATE_DIR STREAMREC_API_HOST STREAMREC_API_PORT STREAMREC_API_ROOT_KEY STREAMREC_GROUP
{{- end }}

{{/* STREAMREC_SHUTDOWN_GRACE_MS as an integer (the service's default when unset). */}}
{{- define "streamrec.graceMs" -}}
{{- $raw := include "streamrec.envString" (.Values.config.STREAMREC_SHUTDOWN_GRACE_MS | default 20000) }}
{{- if not (regexMatch "^[0-9]+$" $raw) }}
{{- fail (printf "config.STREAMREC_SHUTDOWN_GRACE_MS: %q is not a whole number of milliseconds" $raw) }}
{{- end }}
{{- $raw }}
{{- end }}

{{/*
The config map as environment variables, shared by the pods and the hook Job (the Job runs before
anything else of the release exists, so no ConfigMap: the values are inlined in both).
*/}}
{{- define "streamrec.configEnv" -}}
{{- $reserved := splitList " " (include "streamrec.reservedEnv" .) }}
{{- $brokers := include "streamrec.brokers" . -}}
- name: KAFKA_BROKERS
  value: {{ $brokers | quote }}
- name: STREAMREC_GROUP
  value: {{ include "streamrec.group" . | quote }}
{{- range $name := keys .Values.config | sortAlpha }}
{{- if has $name $reserved }}
{{- fail (printf "config.%s is set by the chart (see values.yaml); remove it from config" $name) }}
{{- end }}
{{- if not (regexMatch "^[A-Za-z_][A-Za-z0-9_]*$" $name) }}
{{- fail (printf "config.%s: not an environment variable name" $name) }}
{{- end }}
{{- if ne $name "KAFKA_BROKERS" }}
{{- $v := index $.Values.config $name }}
{{- if kindIs "invalid" $v }}
{{- fail (printf "config.%s has no value (null); remove it or give it one" $name) }}
{{- end }}
{{- if or (kindIs "map" $v) (kindIs "slice" $v) }}
{{- fail (printf "config.%s: a setting is a string, number or boolean, not a list or map (JSON settings go in as a string)" $name) }}
{{- end }}
- name: {{ $name }}
  value: {{ include "streamrec.envString" $v | quote }}
{{- end }}
{{- end }}
{{- range $e := .Values.extraEnv }}
{{- if or (has $e.name $reserved) (hasKey $.Values.config $e.name) (eq $e.name "KAFKA_BROKERS") }}
{{- fail (printf "extraEnv: %s is already set by the chart or by config; set it in one place" $e.name) }}
{{- end }}
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

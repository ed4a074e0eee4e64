{{/* Labels every object carries: the standard Helm ones. */}}
{{- define "ib-kubernetes.labels" -}}
app.kubernetes.io/name: ib-kubernetes
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end }}

{{/* The Secret the UFM_* variables come from. */}}
{{- define "ib-kubernetes.ufmSecret" -}}
{{- .Values.ufm.existingSecret | default "ib-kubernetes-ufm-secret" -}}
{{- end }}

{{/* The controller's identity at the API server. */}}
{{- define "ib-kubernetes.username" -}}
{{- printf "system:serviceaccount:%s:ib-kubernetes" .Release.Namespace -}}
{{- end }}

{{/* The image reference: a digest pins it, else the tag, else none. */}}
{{- define "ib-kubernetes.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else if .Values.image.tag -}}
{{- printf "%s:%s" .Values.image.repository .Values.image.tag -}}
{{- else -}}
{{- .Values.image.repository -}}
{{- end -}}
{{- end }}

{{/*
A config value as the ConfigMap string the daemon parses: whole numbers without an exponent (YAML
numbers reach templates as floats), booleans as true/false.
*/}}
{{- define "ib-kubernetes.configValue" -}}
{{- if kindIs "float64" . -}}
{{- int64 . | toString -}}
{{- else -}}
{{- toString . -}}
{{- end -}}
{{- end }}

{{/* Refuses settings the daemon would refuse at start that the schema cannot express. */}}
{{- define "ib-kubernetes.validate" -}}
{{- $c := .Values.config -}}
{{- if not (lt (int64 $c.LEADER_RENEW_DEADLINE) (int64 $c.LEADER_LEASE_DURATION)) -}}
{{- fail (printf "config.LEADER_RENEW_DEADLINE (%v) must be shorter than config.LEADER_LEASE_DURATION (%v)" $c.LEADER_RENEW_DEADLINE $c.LEADER_LEASE_DURATION) -}}
{{- end -}}
{{- if not (lt (int64 $c.LEADER_RETRY_PERIOD) (int64 $c.LEADER_RENEW_DEADLINE)) -}}
{{- fail (printf "config.LEADER_RETRY_PERIOD (%v) must be shorter than config.LEADER_RENEW_DEADLINE (%v)" $c.LEADER_RETRY_PERIOD $c.LEADER_RENEW_DEADLINE) -}}
{{- end -}}
{{- $start := regexReplaceAll "[^0-9a-f]" (lower $c.GUID_POOL_RANGE_START) "" -}}
{{- $end := regexReplaceAll "[^0-9a-f]" (lower $c.GUID_POOL_RANGE_END) "" -}}
{{- if gt $start $end -}}
{{- fail (printf "config.GUID_POOL_RANGE_START (%s) must not be after config.GUID_POOL_RANGE_END (%s)" $c.GUID_POOL_RANGE_START $c.GUID_POOL_RANGE_END) -}}
{{- end -}}
{{- if and (trim (toString (default "" $c.WATCH_NAMESPACE))) (eq $start "0200000000000000") (eq $end "02ffffffffffffff") -}}
{{- fail (printf "config.WATCH_NAMESPACE (%s) needs config.GUID_POOL_RANGE_START and config.GUID_POOL_RANGE_END set to a range of its own, not the default one (the ownership records are cluster-wide)" $c.WATCH_NAMESPACE) -}}
{{- end -}}
{{- end }}

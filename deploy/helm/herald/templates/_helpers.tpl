{{- define "herald.labels" -}}
app.kubernetes.io/name: herald
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "herald.trustedPublisher" -}}
{{- if not (default "" .Values.trustedPublisher | toString | trim) -}}
{{- fail "trustedPublisher is required while lab.enabled: set it to the seed's publisher key (kubectl exec <release>-seed-0 -- cat /var/lib/herald/publisher.pub); install with --set lab.enabled=false first to create the seed" -}}
{{- end -}}
{{- default "" .Values.trustedPublisher | toString | trim -}}
{{- end }}

{{/* Names, labels and the pod parts every bucketfn Deployment shares. */}}

{{- define "bucketfn.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "bucketfn.selector" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "bucketfn.labels" -}}
{{ include "bucketfn.selector" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "bucketfn.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* Kubernetes names take no underscores: csv_row_count → csv-row-count. */}}
{{- define "bucketfn.worker" -}}
{{- printf "%s-fn-%s" (include "bucketfn.fullname" .root) (.name | replace "_" "-") | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The function's work queue: runtime/core/names.py's Queues.function. */}}
{{- define "bucketfn.queue" -}}
{{- printf "%s.fn.%s" (.root.Values.config.queue_prefix | default "bucketfn") .name -}}
{{- end -}}

{{- define "bucketfn.vhostPath" -}}
{{- if eq .Values.rabbitmq.vhost "/" -}}/{{- else -}}/{{ .Values.rabbitmq.vhost | urlquery }}{{- end -}}
{{- end -}}

{{- define "bucketfn.gracePeriod" -}}
{{- add (int (ceil (float64 (.Values.config.shutdown_grace | default 30)))) (int .Values.terminationMargin) -}}
{{- end -}}

{{/* Settings from the ConfigMap, credentials from the Secret. */}}
{{- define "bucketfn.envFrom" -}}
envFrom:
  - configMapRef:
      name: {{ include "bucketfn.fullname" . }}
  - secretRef:
      name: {{ include "bucketfn.fullname" . }}
{{- end -}}

{{/* A runtime container's probes on its metrics port. */}}
{{- define "bucketfn.probes" -}}
ports:
  - name: metrics
    containerPort: {{ .Values.metricsPort }}
    protocol: TCP
startupProbe:
  httpGet: {path: /healthz, port: metrics}
  periodSeconds: 2
  failureThreshold: 60
livenessProbe:
  httpGet: {path: /healthz, port: metrics}
  periodSeconds: 10
  timeoutSeconds: 5
  failureThreshold: 3
readinessProbe:
  httpGet: {path: /readyz, port: metrics}
  periodSeconds: 5
  timeoutSeconds: 5
  failureThreshold: 2
{{- end -}}

{{/* What every pod of the chart shares; `.root` is the chart's context. */}}
{{- define "bucketfn.podCommon" -}}
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .root.Values.podSecurityContext | nindent 2 }}
{{- with .root.Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .root.Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .root.Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
volumes:
  # The root filesystem is read-only; functions that spill to a temporary file get this.
  - name: tmp
    emptyDir: {}
{{- end -}}

{{- define "bucketfn.containerCommon" -}}
image: {{ include "bucketfn.image" .root }}
imagePullPolicy: {{ .root.Values.image.pullPolicy }}
securityContext:
  {{- toYaml .root.Values.securityContext | nindent 2 }}
volumeMounts:
  - name: tmp
    mountPath: /tmp
{{ include "bucketfn.envFrom" .root }}
{{- end -}}

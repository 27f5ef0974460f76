{{/*
Names, labels, the shared environment and the two object shapes every workload uses: one
Deployment template and one hook Job template, each called with the workload's own parameters.
*/}}

{{- define "autoloader.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "autoloader.fullname" -}}
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

{{/* The name of one component's objects: <fullname>-<component>. */}}
{{- define "autoloader.componentName" -}}
{{- printf "%s-%s" (include "autoloader.fullname" .root) .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Selector labels of one component; called with (dict "root" $ "component" "api"). */}}
{{- define "autoloader.selectorLabels" -}}
app.kubernetes.io/name: {{ include "autoloader.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* All labels of one component's objects. */}}
{{- define "autoloader.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "autoloader.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: autoloader
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "autoloader.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/*
The non-secret environment, as a YAML map. The ConfigMap holds it for the Deployments; the hook
Jobs inline it, because pre-install hooks run before the ConfigMap exists.
*/}}
{{- define "autoloader.config" -}}
AUTOLOADER_ENV: "production"
AUTOLOADER_KAFKA_BOOTSTRAP_SERVERS: {{ .Values.connections.kafka.bootstrapServers | quote }}
{{- with .Values.connections.s3.endpointUrl }}
AUTOLOADER_S3_ENDPOINT_URL: {{ . | quote }}
{{- end }}
AUTOLOADER_S3_REGION: {{ .Values.connections.s3.region | quote }}
AUTOLOADER_SPARK_REMOTE: {{ .Values.connections.spark.remote | quote }}
PREFECT_API_URL: {{ .Values.connections.prefect.apiUrl | quote }}
HOME: "/tmp"
PREFECT_HOME: "/tmp/.prefect"
PREFECT_LOGGING_HANDLERS_CONSOLE_FORMATTER: "json"
PREFECT_LOGGING_HANDLERS_DEBUG_FORMATTER: "json"
{{- end -}}

{{/* The secret environment: references into the existing Secret, never values. */}}
{{- define "autoloader.secretEnv" -}}
{{- $secret := .Values.credentials.existingSecret -}}
{{- $variables := dict
  "AUTOLOADER_DATABASE_URL" .Values.credentials.keys.databaseUrl
  "AUTOLOADER_CREDENTIALS_KEY" .Values.credentials.keys.credentialsKey
  "AUTOLOADER_S3_ACCESS_KEY_ID" .Values.credentials.keys.s3AccessKeyId
  "AUTOLOADER_S3_SECRET_ACCESS_KEY" .Values.credentials.keys.s3SecretAccessKey
-}}
{{- range $name := keys $variables | sortAlpha }}
{{- with get $variables $name }}
- name: {{ $name }}
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ . }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Pod-level fields every pod shares. */}}
{{- define "autoloader.podCommon" -}}
{{- with .Values.serviceAccount.name }}
serviceAccountName: {{ . }}
{{- end }}
automountServiceAccountToken: {{ .Values.serviceAccount.automountToken }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.image.pullSecrets }}
imagePullSecrets:
  {{- range . }}
  - name: {{ . }}
  {{- end }}
{{- end }}
{{- end -}}

{{/* The writable /tmp every container gets, since the root filesystem is read-only. */}}
{{- define "autoloader.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.tmpSizeLimit }}
{{- end -}}

{{/*
One workload's Deployment. Parameters:
  root       the chart's root context
  component  the component name (api, scheduler-sync, ...)
  workload   the workload's values (replicas, resources, scheduling, extraEnv, podAnnotations)
  command    the container command, a list
  env        extra EnvVar objects of this workload (optional)
  ports      ContainerPort objects (optional)
  probes     a map of probe field name to Probe (optional), e.g. livenessProbe
  lag        the consumer group and topic KEDA scales on (optional): dict "group" "topic"
*/}}
{{- define "autoloader.deployment" -}}
{{- $root := .root -}}
{{- $w := .workload -}}
{{- $labels := dict "root" $root "component" .component -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "autoloader.componentName" $labels }}
  labels:
    {{- include "autoloader.labels" $labels | nindent 4 }}
spec:
  {{- if not (dig "autoscaling" "enabled" false $w) }}
  replicas: {{ $w.replicas }}
  {{- end }}
  revisionHistoryLimit: 5
  selector:
    matchLabels:
      {{- include "autoloader.selectorLabels" $labels | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "autoloader.labels" $labels | nindent 8 }}
      annotations:
        checksum/config: {{ include "autoloader.config" $root | sha256sum }}
        {{- with $w.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      {{- include "autoloader.podCommon" $root | trim | nindent 6 }}
      containers:
        - name: {{ .component }}
          image: {{ include "autoloader.image" $root }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          command:
            {{- toYaml .command | nindent 12 }}
          envFrom:
            - configMapRef:
                name: {{ include "autoloader.fullname" $root }}
          env:
            {{- include "autoloader.secretEnv" $root | trim | nindent 12 }}
            {{- with .env }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
            {{- with $root.Values.extraEnv }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
            {{- with $w.extraEnv }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          {{- with .ports }}
          ports:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          {{- range $field, $probe := .probes }}
          {{ $field }}:
            {{- toYaml $probe | nindent 12 }}
          {{- end }}
          resources:
            {{- toYaml $w.resources | nindent 12 }}
          securityContext:
            {{- toYaml $root.Values.containerSecurityContext | nindent 12 }}
          volumeMounts:
            - name: tmp
              mountPath: /tmp
      volumes:
        {{- include "autoloader.tmpVolume" $root | nindent 8 }}
      {{- with default $root.Values.nodeSelector $w.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with default $root.Values.tolerations $w.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with default $root.Values.affinity $w.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- include "autoloader.autoscaler" . }}
{{- include "autoloader.disruptionBudget" . }}
{{- end -}}

{{/*
The workload's autoscaler, when its `autoscaling` is on: a HorizontalPodAutoscaler on CPU, or,
with `autoscaling.keda.enabled`, a KEDA ScaledObject on CPU and on the lag of the consumer group
named by the `lag` parameter (a dict of group and topic; only Kafka consumers pass one).
*/}}
{{- define "autoloader.autoscaler" -}}
{{- $labels := dict "root" .root "component" .component -}}
{{- $scaling := .workload.autoscaling -}}
{{- if dig "autoscaling" "enabled" false .workload }}
{{- if dig "keda" "enabled" false $scaling }}
---
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata:
  name: {{ include "autoloader.componentName" $labels }}
  labels:
    {{- include "autoloader.labels" $labels | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ include "autoloader.componentName" $labels }}
  minReplicaCount: {{ $scaling.minReplicas }}
  maxReplicaCount: {{ $scaling.maxReplicas }}
  pollingInterval: {{ $scaling.keda.pollingInterval }}
  cooldownPeriod: {{ $scaling.keda.cooldownPeriod }}
  triggers:
    - type: kafka
      metadata:
        bootstrapServers: {{ .root.Values.connections.kafka.bootstrapServers | quote }}
        consumerGroup: {{ .lag.group | quote }}
        topic: {{ .lag.topic | quote }}
        lagThreshold: {{ $scaling.keda.lagThreshold | toString | quote }}
      {{- with $scaling.keda.authenticationRef }}
      authenticationRef:
        name: {{ . }}
      {{- end }}
    - type: cpu
      metricType: Utilization
      metadata:
        value: {{ $scaling.targetCPUUtilizationPercentage | toString | quote }}
{{- else }}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ include "autoloader.componentName" $labels }}
  labels:
    {{- include "autoloader.labels" $labels | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ include "autoloader.componentName" $labels }}
  minReplicas: {{ $scaling.minReplicas }}
  maxReplicas: {{ $scaling.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ $scaling.targetCPUUtilizationPercentage }}
{{- end }}
{{- end }}
{{- end -}}

{{/*
A PodDisruptionBudget for the workload's pods, when its `podDisruptionBudget` is on.
*/}}
{{- define "autoloader.disruptionBudget" -}}
{{- $labels := dict "root" .root "component" .component -}}
{{- if dig "podDisruptionBudget" "enabled" false .workload }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "autoloader.componentName" $labels }}
  labels:
    {{- include "autoloader.labels" $labels | nindent 4 }}
spec:
  maxUnavailable: {{ .workload.podDisruptionBudget.maxUnavailable }}
  selector:
    matchLabels:
      {{- include "autoloader.selectorLabels" $labels | nindent 6 }}
{{- end }}
{{- end -}}

{{/*
One Job run as a Helm hook before install and upgrade. Parameters:
  root, component, command  as for autoloader.deployment
  job         the Job's values (backoffLimit, activeDeadlineSeconds, resources, workingDir)
  weight      the hook weight: lower runs first
*/}}
{{- define "autoloader.hookJob" -}}
{{- $root := .root -}}
{{- $job := .job -}}
{{- $labels := dict "root" $root "component" .component -}}
apiVersion: batch/v1
kind: Job
metadata:
  name: {{ include "autoloader.componentName" $labels }}
  labels:
    {{- include "autoloader.labels" $labels | nindent 4 }}
  annotations:
    "helm.sh/hook": pre-install,pre-upgrade
    "helm.sh/hook-weight": {{ .weight | quote }}
    "helm.sh/hook-delete-policy": before-hook-creation,hook-succeeded
spec:
  backoffLimit: {{ $job.backoffLimit }}
  activeDeadlineSeconds: {{ $job.activeDeadlineSeconds }}
  template:
    metadata:
      labels:
        {{- include "autoloader.labels" $labels | nindent 8 }}
    spec:
      restartPolicy: Never
      {{- include "autoloader.podCommon" $root | trim | nindent 6 }}
      containers:
        - name: {{ .component }}
          image: {{ include "autoloader.image" $root }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          {{- with $job.workingDir }}
          workingDir: {{ . }}
          {{- end }}
          command:
            {{- toYaml .command | nindent 12 }}
          env:
            {{- range $name, $value := include "autoloader.config" $root | fromYaml }}
            - name: {{ $name }}
              value: {{ $value | quote }}
            {{- end }}
            {{- include "autoloader.secretEnv" $root | trim | nindent 12 }}
            {{- with $root.Values.extraEnv }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          resources:
            {{- toYaml $job.resources | nindent 12 }}
          securityContext:
            {{- toYaml $root.Values.containerSecurityContext | nindent 12 }}
          volumeMounts:
            - name: tmp
              mountPath: /tmp
      volumes:
        {{- include "autoloader.tmpVolume" $root | nindent 8 }}
      {{- with $root.Values.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $root.Values.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $root.Values.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end -}}

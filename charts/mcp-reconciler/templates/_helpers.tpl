{{/*
Names, labels and computed values shared by every template.
*/}}

{{/* Chart name, overridable; 63 characters is the DNS label limit. */}}
{{- define "mcp-reconciler.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: the release name, with the chart name appended unless the release name already contains it. */}}
{{- define "mcp-reconciler.fullname" -}}
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

{{- define "mcp-reconciler.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Immutable selector labels: never add version-dependent labels here. */}}
{{- define "mcp-reconciler.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mcp-reconciler.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "mcp-reconciler.labels" -}}
helm.sh/chart: {{ include "mcp-reconciler.chart" . }}
{{ include "mcp-reconciler.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: mcp-reconciler
{{- end }}

{{- define "mcp-reconciler.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "mcp-reconciler.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The image reference: digest when given, else the tag, else the chart's appVersion. */}}
{{- define "mcp-reconciler.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Service names are DNS labels: the suffix must fit in 63 characters too. */}}
{{- define "mcp-reconciler.metricsServiceName" -}}
{{- printf "%s-metrics" (include "mcp-reconciler.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The `serve` component (the MCP endpoint, the Registry API and the connect service). Its name keeps room for the
"-serve" suffix so it never collides with the operator's Deployment, even with the longest release name.
*/}}
{{- define "mcp-reconciler.serveName" -}}
{{- printf "%s-serve" (include "mcp-reconciler.fullname" . | trunc 57 | trimSuffix "-") }}
{{- end }}

{{/*
Selector labels of the serve pods. The operator Deployment's selector (immutable since 0.1.0) is only
`app.kubernetes.io/name` + `instance`, so serve pods must differ in one of them or that Deployment, the PDB and
`kubectl rollout status` would count them as operator pods: they carry the name `<name>-serve`, and
`app.kubernetes.io/part-of` still ties them to the release.
*/}}
{{- define "mcp-reconciler.serveSelectorLabels" -}}
app.kubernetes.io/name: {{ printf "%s-serve" (include "mcp-reconciler.name" . | trunc 57 | trimSuffix "-") }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: serve
{{- end }}

{{- define "mcp-reconciler.serveLabels" -}}
helm.sh/chart: {{ include "mcp-reconciler.chart" . }}
{{ include "mcp-reconciler.serveSelectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: mcp-reconciler
{{- end }}

{{/* The platform bearer token of `serve`: a Secret the user creates, never a chart value. */}}
{{- define "mcp-reconciler.serveTokenSecretName" -}}
{{- required "serve.enabled needs serve.tokenSecret.name: a Secret holding the platform bearer token (at least 16 characters) that /mcp, /v0.1 and /oauth/connections require" .Values.serve.tokenSecret.name }}
{{- end }}

{{/*
Ingress hosts: `serve.ingress.hosts` as given, or else one host taken from `publicUrl` with the path `/`, since
the public URL is where browsers and authorization servers must reach the service.
*/}}
{{- define "mcp-reconciler.serveIngressHosts" -}}
{{- if .Values.serve.ingress.hosts }}
{{- toYaml .Values.serve.ingress.hosts }}
{{- else if .Values.publicUrl }}
- host: {{ (urlParse .Values.publicUrl).hostname | quote }}
  paths:
    - path: /
      pathType: Prefix
{{- else }}
{{- fail "serve.ingress.enabled needs serve.ingress.hosts or publicUrl (the host browsers and authorization servers reach)" }}
{{- end }}
{{- end }}

{{- define "mcp-reconciler.registrySecretName" -}}
{{- default (printf "%s-registry" (include "mcp-reconciler.fullname" .)) .Values.registry.existingSecret.name }}
{{- end }}

{{- define "mcp-reconciler.storeKeySecretName" -}}
{{- default (include "mcp-reconciler.registrySecretName" .) .Values.secretStore.existingSecret.name }}
{{- end }}

{{- define "mcp-reconciler.peeringName" -}}
{{- default (include "mcp-reconciler.fullname" .) .Values.peering.name }}
{{- end }}

{{/*
Namespaced mode needs at least one namespace, and Cluster mode takes none: fail early with a clear message
(values.schema.json says the same; this guards renderers that skip the schema).
*/}}
{{- define "mcp-reconciler.validateWatch" -}}
{{- if eq .Values.watch.scope "Namespaced" }}
{{- if not .Values.watch.namespaces }}
{{- fail "watch.scope=Namespaced needs at least one namespace in watch.namespaces" }}
{{- end }}
{{- else if .Values.watch.namespaces }}
{{- fail "watch.namespaces is only used with watch.scope=Namespaced (Cluster mode watches every namespace)" }}
{{- end }}
{{- end }}

{{/*
RBAC rules for everything that lives in a watched namespace. Used by the ClusterRole (Cluster mode) and by
the Role in each watched namespace (Namespaced mode), so both modes grant exactly the same verbs.
*/}}
{{- define "mcp-reconciler.namespacedRules" -}}
# The four kinds: read, add/remove finalizers and kopf's bookkeeping annotations.
- apiGroups: ["mcp.reconciler.dev"]
  resources: ["mcpservers", "mcpconnections", "mcpaccessgrants", "mcptemplatebindings"]
  verbs: ["get", "list", "watch", "patch", "update"]
# Status is written only through the /status subresource.
- apiGroups: ["mcp.reconciler.dev"]
  resources: ["mcpservers/status", "mcpconnections/status", "mcpaccessgrants/status", "mcptemplatebindings/status"]
  verbs: ["get", "patch", "update"]
- apiGroups: ["mcp.reconciler.dev"]
  resources: ["mcpservers/finalizers", "mcpconnections/finalizers", "mcpaccessgrants/finalizers", "mcptemplatebindings/finalizers"]
  verbs: ["update"]
# Credentials are read, never written.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch"]
# Tenant variables (the mcp-tenant ConfigMap) are read; bindings' spec.export ConfigMaps are written (and
# removed with their binding) only when the export is turned on.
- apiGroups: [""]
  resources: ["configmaps"]
  {{- if .Values.export.configMaps }}
  verbs: ["get", "list", "watch", "create", "update", "patch", "delete"]
  {{- else }}
  verbs: ["get", "list", "watch"]
  {{- end }}
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}

{{/*
What serve may do with `serve.secrets.read`: read one Secret by name (a client's secret a reference names). No
list or watch: serve caches a value briefly and reads it again, and cannot enumerate Secrets.
*/}}
{{- define "mcp-reconciler.serveRules" -}}
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get"]
{{- end }}

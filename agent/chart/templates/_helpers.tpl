{{/* The name of the ServiceAccount, ClusterRole(Binding), Secret and Deployment (manifest::NAME). */}}
{{- define "arca-agent.name" -}}arca-agent{{- end -}}

{{/* Labels of an object: ours (manifest.rs `labels`) over the user's extra labels. */}}
{{- define "arca-agent.labels" -}}
{{- $ours := dict "app.kubernetes.io/part-of" "arca" "app.kubernetes.io/name" "arca-agent" "app.kubernetes.io/component" .component -}}
{{- toYaml (merge $ours (deepCopy (.root.Values.labels | default dict))) -}}
{{- end -}}

{{/* Metadata of an object: name, labels and, for namespaced ones, the namespace. */}}
{{- define "arca-agent.metadata" -}}
name: {{ .name | toJson }}
{{- if .namespaced }}
namespace: {{ .root.Values.namespace | toJson }}
{{- end }}
labels:
  {{- include "arca-agent.labels" . | nindent 2 }}
{{- end -}}

{{- define "arca-agent.apiUrl" -}}
{{- required "apiUrl is required: the Arca API the agent calls (the stack's ApiUrl output)" .Values.apiUrl | toString | trimSuffix "/" -}}
{{- end -}}

{{- define "arca-agent.clusterId" -}}
{{- required "clusterId is required: the cluster's id (cl_...) from `arca clusters register`" .Values.clusterId | toString -}}
{{- end -}}

{{/* Checks that the token comes from exactly one place. */}}
{{- define "arca-agent.validate" -}}
{{- if and .Values.agentToken .Values.existingSecret.name -}}
{{- fail "set agentToken or existingSecret.name, not both" -}}
{{- end -}}
{{- if not (or .Values.agentToken .Values.existingSecret.name) -}}
{{- fail "agentToken or existingSecret.name is required: the cluster's agent token (arcagent_...), from `arca clusters register NAME --agent-token-file FILE`" -}}
{{- end -}}
{{- end -}}

{{/* The agent's image (and its mover Jobs'): by digest when image.digest is set. */}}
{{- define "arca-agent.image" -}}
{{- with .Values.image.digest -}}
{{- if not (regexMatch "^sha256:[0-9a-f]{64}$" (toString .)) -}}
{{- fail (printf "image.digest must be sha256:<64 hex digits>, not %q" (toString .)) -}}
{{- end -}}
{{- printf "%s@%s" $.Values.image.repository . -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion | toString) -}}
{{- end -}}
{{- end -}}

{{/* Labels on every object. The selector uses the name label only, as deploy/ does. */}}
{{- define "k8s-ea.labels" -}}
app.kubernetes.io/name: k8s-ephemeral-access-broker
app.kubernetes.io/instance: {{ .Release.Name }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end }}

{{- define "k8s-ea.selector" -}}
app.kubernetes.io/name: k8s-ephemeral-access-broker
{{- end }}

{{/* The broker's config file, from the values (docs/configuration.md). */}}
{{- define "k8s-ea.brokerConfig" -}}
{{- $c := dict
  "listen" (dict "host" "0.0.0.0" "port" 8443)
  "internalListen" (dict "host" "0.0.0.0" "port" 9090)
  "tls" (dict "certFile" "/etc/k8s-ea-tls/tls.crt" "keyFile" "/etc/k8s-ea-tls/tls.key")
  "issuers" .Values.issuers
  "audience" .Values.audience
  "policyFile" "policy.yaml"
  "brokerNamespace" .Release.Namespace -}}
{{- with .Values.clusterServer }}{{ $_ := set $c "clusterServer" . }}{{ end }}
{{- if .Values.clusterCa }}{{ $_ := set $c "clusterCaFile" "cluster-ca.crt" }}{{ end }}
{{- if .Values.gateway.enabled }}
{{- $g := dict "url" (required "gateway.url is required when gateway.enabled" .Values.gateway.url) "listen" .Values.gateway.listen }}
{{- if .Values.gateway.tlsSecretName }}
{{- $_ := set $g "tls" (dict "certFile" "/etc/k8s-ea-gateway-tls/tls.crt" "keyFile" "/etc/k8s-ea-gateway-tls/tls.key") }}
{{- end }}
{{- if .Values.gateway.ca }}{{ $_ := set $g "caFile" "gateway-ca.crt" }}{{ end }}
{{- $_ := set $c "gateway" $g }}
{{- end }}
{{- if .Values.edge.enabled }}
{{- $_ := set $c "edge" (include "k8s-ea.brokerEdgeSection" . | fromYaml) }}
{{- if include "k8s-ea.edgeOnly" . }}
{{- $_ := set $c "publicListeners" false }}
{{- $_ := unset $c "listen" }}
{{- $_ := unset $c.gateway "listen" }}
{{- end }}
{{- end }}
{{- $owned := list "listen" "internalListen" "tls" "policyFile" "brokerNamespace" "edge" "publicListeners" }}
{{- range $k, $v := .Values.config }}
{{- if has $k $owned }}{{ fail (printf "config.%s is set by the chart; use the chart's values instead" $k) }}{{ end }}
{{- $_ := set $c $k $v }}
{{- end }}
{{- toYaml $c }}
{{- end }}

{{/* The config ConfigMap's data: what the broker reads once, at start (the checksum covers exactly this). */}}
{{- define "k8s-ea.configData" -}}
broker-config.yaml: |
  {{- include "k8s-ea.brokerConfig" . | nindent 2 }}
{{- with .Values.clusterCa }}
cluster-ca.crt: |
  {{- . | nindent 2 }}
{{- end }}
{{- with .Values.issuerCa }}
issuer-ca.crt: |
  {{- . | nindent 2 }}
{{- end }}
{{- if and .Values.gateway.enabled .Values.gateway.ca }}
gateway-ca.crt: |
  {{- .Values.gateway.ca | nindent 2 }}
{{- end }}
{{- end }}

{{/* The shutdown budget: the preStop sleep, then shutdownGraceMs for requests in flight, must fit in the grace period. */}}
{{- define "k8s-ea.terminationGrace" -}}
{{- $graceMs := int (.Values.config.shutdownGraceMs | default 10000) }}
{{- $need := add .Values.drain.preStopSeconds (div (add $graceMs 999) 1000) 1 }}
{{- if lt (int .Values.drain.terminationGracePeriodSeconds) (int $need) }}
{{- fail (printf "drain.terminationGracePeriodSeconds (%v) must be at least drain.preStopSeconds + config.shutdownGraceMs in seconds + 1 (%v)" .Values.drain.terminationGracePeriodSeconds $need) }}
{{- end }}
{{- .Values.drain.terminationGracePeriodSeconds }}
{{- end }}

{{/* What the policy needs of the broker's RBAC, derived from .Values.policy the way `rbac generate` derives
it (src/broker/rbac/broker-rbac.ts; a test renders both for the same policies and compares them), so the
RBAC cannot drift from the policy. As JSON: {"clusterRoles": [every named ClusterRole granted],
"namespaces": {ns: {"clusterRoles": [...], "roles": [...], "inline": {role: [its rules]}}}}. */}}
{{- define "k8s-ea.policyNeeds" -}}
{{- $p := fromYaml .Values.policy }}
{{- if hasKey $p "Error" }}{{ fail (printf "policy is not YAML: %s" $p.Error) }}{{ end }}
{{- $roles := $p.roles | default dict }}
{{- $namespaces := dict }}
{{- $clusterRoles := list }}
{{- range $rule := $p.rules | default list }}
{{- range $ns := $rule.namespaces | default list }}
{{- $n := dict "clusterRoles" list "roles" list "inline" dict }}
{{- if hasKey $namespaces $ns }}{{ $n = get $namespaces $ns }}{{ end }}
{{- range $name := $rule.roles | default list }}
{{- $def := get $roles $name | default dict }}
{{- if hasKey $def "clusterRole" }}
{{- $_ := set $n "clusterRoles" (append $n.clusterRoles $def.clusterRole) }}
{{- $clusterRoles = append $clusterRoles $def.clusterRole }}
{{- else if hasKey $def "role" }}
{{- $_ := set $n "roles" (append $n.roles $def.role) }}
{{- else if hasKey $def "rules" }}
{{- $_ := set $n.inline $name $def.rules }}
{{- end }}
{{- end }}
{{- $_ := set $namespaces $ns $n }}
{{- end }}
{{- end }}
{{- dict "clusterRoles" ($clusterRoles | uniq | sortAlpha) "namespaces" $namespaces | toJson }}
{{- end }}

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
{{- $owned := list "listen" "internalListen" "tls" "policyFile" "brokerNamespace" }}
{{- range $k, $v := .Values.config }}
{{- if has $k $owned }}{{ fail (printf "config.%s is set by the chart; use the chart's values instead" $k) }}{{ end }}
{{- $_ := set $c $k $v }}
{{- end }}
{{- toYaml $c }}
{{- end }}

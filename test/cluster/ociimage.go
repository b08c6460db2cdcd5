package main

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// OCI media types (image-spec v1.1).
const (
	mediaIndex    = "application/vnd.oci.image.index.v1+json"
	mediaManifest = "application/vnd.oci.image.manifest.v1+json"
	mediaConfig   = "application/vnd.oci.image.config.v1+json"
	mediaLayer    = "application/vnd.oci.image.layer.v1.tar"
)

type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int               `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

func describe(mediaType string, blob []byte) descriptor {
	return descriptor{MediaType: mediaType, Digest: fmt.Sprintf("sha256:%x", sha256.Sum256(blob)), Size: len(blob)}
}

// tarOf writes files (name -> mode, content) into a tar with every header fixed (owner root, time
// zero), in the given order: the same input gives the same bytes.
func tarOf(names []string, modes map[string]int64, contents map[string][]byte) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, name := range names {
		hdr := &tar.Header{Name: name, Mode: modes[name], ModTime: time.Unix(0, 0), Format: tar.FormatUSTAR}
		if strings.HasSuffix(name, "/") {
			hdr.Typeflag = tar.TypeDir
		} else {
			hdr.Typeflag, hdr.Size = tar.TypeReg, int64(len(contents[name]))
		}
		fail(tw.WriteHeader(hdr))
		_, err := tw.Write(contents[name])
		fail(err)
	}
	fail(tw.Close())
	return buf.Bytes()
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	fail(err)
	return b
}

// writeOCIImage writes an OCI image layout archive (what `ctr images import` reads) of one layer
// holding binary at /<its name>, its entrypoint, running as user. Deterministic: no timestamps,
// uncompressed layer, fixed order.
func writeOCIImage(out, ref, binary, user string) error {
	bin, err := os.ReadFile(binary)
	if err != nil {
		return err
	}
	name := filepath.Base(binary)
	layer := tarOf([]string{name, "tmp/"}, map[string]int64{name: 0o755, "tmp/": 0o1777}, map[string][]byte{name: bin})
	layerDesc := describe(mediaLayer, layer)
	config := mustJSON(map[string]any{
		"created": "1970-01-01T00:00:00Z", "architecture": runtime.GOARCH, "os": "linux",
		"config": map[string]any{"User": user, "Entrypoint": []string{"/" + name}, "WorkingDir": "/"},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{layerDesc.Digest}},
	})
	configDesc := describe(mediaConfig, config)
	manifest := mustJSON(map[string]any{"schemaVersion": 2, "mediaType": mediaManifest,
		"config": configDesc, "layers": []descriptor{layerDesc}})
	manifestDesc := describe(mediaManifest, manifest)
	tag := ref[strings.LastIndex(ref, ":")+1:]
	manifestDesc.Annotations = map[string]string{"io.containerd.image.name": ref, "org.opencontainers.image.ref.name": tag}
	index := mustJSON(map[string]any{"schemaVersion": 2, "mediaType": mediaIndex, "manifests": []descriptor{manifestDesc}})
	blob := func(d descriptor) string { return "blobs/sha256/" + strings.TrimPrefix(d.Digest, "sha256:") }
	files := map[string][]byte{
		"oci-layout": []byte(`{"imageLayoutVersion":"1.0.0"}`), "index.json": index,
		blob(layerDesc): layer, blob(configDesc): config, blob(manifestDesc): manifest,
	}
	names := []string{"oci-layout", "index.json", "blobs/", "blobs/sha256/", blob(manifestDesc), blob(configDesc), blob(layerDesc)}
	modes := map[string]int64{}
	for _, n := range names {
		modes[n] = 0o644
		if strings.HasSuffix(n, "/") {
			modes[n] = 0o755
		}
	}
	return os.WriteFile(out, tarOf(names, modes, files), 0o644)
}

package main

import (
	"encoding/json"
	"fmt"
	"os"
	"time"
)

// Plan is everything the image is made of, written by build.mjs: the layers' sources, the image
// config and where the OCI layout tarball goes. Every choice (which files, which modes) is the
// plan's; this program only makes the bytes deterministic.
type Plan struct {
	Architecture string      `json:"architecture"`
	Variant      string      `json:"variant,omitempty"`
	Created      time.Time   `json:"created"`
	Layers       []LayerPlan `json:"layers"`
	Config       ConfigPlan  `json:"config"`
	// ImageName is the full reference containerd names the image on import (io.containerd.image.name);
	// Tag is the OCI layout's org.opencontainers.image.ref.name.
	ImageName string `json:"imageName"`
	Tag       string `json:"tag"`
	Out       string `json:"out"`
	// WorkDir holds the layer blobs while the layout is assembled.
	WorkDir string `json:"workDir"`
}

// LayerPlan is one layer: its entries, in order, and the history line that describes it.
type LayerPlan struct {
	CreatedBy string  `json:"createdBy"`
	Entries   []Entry `json:"entries"`
}

// Entry is one source of files, exactly one of Tar, File, Text or Dir.
type Entry struct {
	// Tar: the entries of a tar stream (plain or gzip): a Debian package's data (dpkg-deb
	// --fsys-tarfile) or an npm package. Names are cleaned to absolute paths, then Strip is removed.
	Tar string `json:"tar,omitempty"`
	// Strip is a leading directory removed from every name (e.g. "/package" for an npm tarball).
	Strip string `json:"strip,omitempty"`
	// Include, when set, keeps only these paths and what is under them; Exclude drops paths and what
	// is under them; Keep (path.Match patterns) keeps a path Exclude would drop.
	Include []string `json:"include,omitempty"`
	Exclude []string `json:"exclude,omitempty"`
	Keep    []string `json:"keep,omitempty"`
	// Rename moves single paths (after Strip): "/bin/node" → "/usr/bin/node".
	Rename map[string]string `json:"rename,omitempty"`
	// Md5sums, when set, is the path of a generated dpkg md5sums file listing the regular files this
	// source put in the image (what an SBOM tool reads to know which package owns which file).
	Md5sums string `json:"md5sums,omitempty"`

	// File: a file of this machine, put at Path with Mode.
	File string `json:"file,omitempty"`
	// Text: literal content, put at Path with Mode.
	Text *string `json:"text,omitempty"`
	// Dir: a directory at Path with Mode.
	Dir  bool   `json:"dir,omitempty"`
	Path string `json:"path,omitempty"`
	Mode int64  `json:"mode,omitempty"`
}

// ConfigPlan is the runtime part of the image config (the OCI config's "config").
type ConfigPlan struct {
	User         string            `json:"user"`
	Entrypoint   []string          `json:"entrypoint"`
	Cmd          []string          `json:"cmd"`
	Env          []string          `json:"env"`
	WorkingDir   string            `json:"workingDir"`
	ExposedPorts []string          `json:"exposedPorts"`
	Labels       map[string]string `json:"labels"`
}

func readPlan(file string) (*Plan, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var plan Plan
	if err := json.Unmarshal(data, &plan); err != nil {
		return nil, fmt.Errorf("plan %s: %w", file, err)
	}
	if plan.Out == "" || plan.WorkDir == "" || len(plan.Layers) == 0 || plan.Architecture == "" {
		return nil, fmt.Errorf("plan %s: out, workDir, architecture and layers are required", file)
	}
	return &plan, nil
}

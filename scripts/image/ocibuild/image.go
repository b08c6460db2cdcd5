package main

import (
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// built is what the program reports: the manifest digest and the image's sizes.
type built struct {
	Digest       string `json:"digest"`
	Compressed   int64  `json:"compressedBytes"`
	Uncompressed int64  `json:"uncompressedBytes"`
	Layers       int    `json:"layers"`
	Out          string `json:"out"`
}

// buildImage writes each layer of the plan and assembles the OCI image around them.
func buildImage(plan *Plan) (v1.Image, *built, error) {
	created := plan.Created.UTC().Truncate(time.Second)
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	report := &built{Layers: len(plan.Layers), Out: plan.Out}
	for i, lp := range plan.Layers {
		fs := fileset{}
		for _, e := range lp.Entries {
			if err := fs.addEntry(e); err != nil {
				return nil, nil, fmt.Errorf("layer %d (%s): %w", i, lp.CreatedBy, err)
			}
		}
		file := filepath.Join(plan.WorkDir, "layer-"+strconv.Itoa(i)+".tar.gz")
		size, err := writeLayer(fs, file, created)
		if err != nil {
			return nil, nil, err
		}
		report.Uncompressed += size
		layer, err := tarball.LayerFromFile(file, tarball.WithMediaType(types.OCILayer))
		if err != nil {
			return nil, nil, err
		}
		img, err = mutate.Append(img, mutate.Addendum{
			Layer:   layer,
			History: v1.History{Created: v1.Time{Time: created}, CreatedBy: lp.CreatedBy},
		})
		if err != nil {
			return nil, nil, err
		}
	}
	img, err := withConfig(img, plan, created)
	if err != nil {
		return nil, nil, err
	}
	return img, report, nil
}

// withConfig sets the image config: platform, creation time and the runtime config of the plan.
func withConfig(img v1.Image, plan *Plan, created time.Time) (v1.Image, error) {
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Architecture = plan.Architecture
	cf.Variant = plan.Variant
	cf.OS = "linux"
	cf.Created = v1.Time{Time: created}
	c := plan.Config
	cf.Config = v1.Config{
		User:       c.User,
		Entrypoint: c.Entrypoint,
		Cmd:        c.Cmd,
		Env:        c.Env,
		WorkingDir: c.WorkingDir,
		Labels:     c.Labels,
	}
	if len(c.ExposedPorts) > 0 {
		ports := append([]string(nil), c.ExposedPorts...)
		sort.Strings(ports)
		cf.Config.ExposedPorts = map[string]struct{}{}
		for _, p := range ports {
			cf.Config.ExposedPorts[p] = struct{}{}
		}
	}
	return mutate.ConfigFile(img, cf)
}

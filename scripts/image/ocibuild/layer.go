package main

import (
	"archive/tar"
	"compress/gzip"
	"os"
	"strings"
	"time"
)

// writeLayer writes a fileset as a gzip-compressed tar whose bytes depend only on its content:
// entries sorted by path, owned by 0:0 with no user or group names, every time the image's creation
// time, no access or change times, and a gzip header with neither name nor time.
func writeLayer(fs fileset, file string, mtime time.Time) (uncompressed int64, err error) {
	f, err := os.Create(file)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	gz, err := gzip.NewWriterLevel(f, gzip.DefaultCompression)
	if err != nil {
		return 0, err
	}
	counter := &countingWriter{w: gz}
	tw := tar.NewWriter(counter)
	fs.withParents()
	for _, p := range fs.sortedPaths() {
		n := fs[p]
		h := &tar.Header{
			Typeflag: n.typ,
			Name:     strings.TrimPrefix(p, "/"),
			Mode:     n.mode,
			ModTime:  mtime,
			Format:   tar.FormatPAX,
		}
		switch n.typ {
		case tar.TypeDir:
			h.Name += "/"
		case tar.TypeSymlink:
			h.Linkname = n.linkname
		case tar.TypeReg:
			h.Size = int64(len(n.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return 0, err
		}
		if _, err := tw.Write(n.data); err != nil {
			return 0, err
		}
	}
	if err := tw.Close(); err != nil {
		return 0, err
	}
	if err := gz.Close(); err != nil {
		return 0, err
	}
	return counter.n, f.Close()
}

type countingWriter struct {
	w interface{ Write([]byte) (int, error) }
	n int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}

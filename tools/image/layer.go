package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// epoch is the only timestamp recorded in built images, so that builds are
// reproducible (same input, same digests).
var epoch = v1.Time{Time: time.Unix(0, 0).UTC()}

// tarFile is one regular file of a layer, owned by root unless uid/gid say
// otherwise.
type tarFile struct {
	name     string
	mode     int64
	uid, gid int
	data     []byte
}

// tarGzLayer builds a gzip-compressed tar layer with exactly the given files,
// deterministically, and gives it media type mt.
func tarGzLayer(files []tarFile, mt types.MediaType) (v1.Layer, error) {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	tw := tar.NewWriter(zw)
	for _, f := range files {
		hdr := &tar.Header{
			Typeflag: tar.TypeReg,
			Name:     f.name,
			Mode:     f.mode,
			Uid:      f.uid,
			Gid:      f.gid,
			Size:     int64(len(f.data)),
			ModTime:  epoch.Time,
			Format:   tar.FormatPAX,
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	gz := buf.Bytes()
	// A gzip stream handed to LayerFromOpener is used as the compressed blob
	// as is; the DiffID is computed by gunzipping it.
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(gz)), nil
	}, tarball.WithMediaType(mt))
}

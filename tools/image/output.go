package image

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/match"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// WriteLayout writes img into the OCI image layout at dir (created if
// missing, added to if it exists) under the reference name tag
// (annotation org.opencontainers.image.ref.name), replacing an image already
// stored under that name. It returns the manifest digest.
func WriteLayout(dir string, img v1.Image, tag string) (v1.Hash, error) {
	if tag == "" {
		return v1.Hash{}, errors.New("empty tag for the OCI layout")
	}
	digest, err := img.Digest()
	if err != nil {
		return v1.Hash{}, err
	}
	p, err := openLayout(dir)
	if err != nil {
		return v1.Hash{}, err
	}
	if err := p.ReplaceImage(img, match.Annotation(annotationRefName, tag),
		layout.WithAnnotations(map[string]string{annotationRefName: tag})); err != nil {
		return v1.Hash{}, fmt.Errorf("writing OCI layout %s: %w", dir, err)
	}
	return digest, nil
}

func openLayout(dir string) (layout.Path, error) {
	if _, err := os.Stat(filepath.Join(dir, "index.json")); err == nil {
		return layout.FromPath(dir)
	}
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return "", fmt.Errorf("%s exists, is not empty and is not an OCI layout", dir)
	}
	return layout.Write(dir, empty.Index)
}

// PushOptions adjusts Push.
type PushOptions struct {
	// Insecure allows plain http to registries other than localhost and
	// 127.0.0.1 (those use http anyway).
	Insecure bool
	// Remote are extra go-containerregistry options (transport, auth); the
	// default authenticates with the Docker config keychain.
	Remote []remote.Option
}

// Push uploads img to the registry reference ref (repo:tag or repo@digest)
// and returns the manifest digest.
func Push(ctx context.Context, ref string, img v1.Image, opts PushOptions) (v1.Hash, error) {
	var nopts []name.Option
	if opts.Insecure {
		nopts = append(nopts, name.Insecure)
	}
	r, err := name.ParseReference(ref, nopts...)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("parsing reference %q: %w", ref, err)
	}
	digest, err := img.Digest()
	if err != nil {
		return v1.Hash{}, err
	}
	if d, ok := r.(name.Digest); ok && d.DigestStr() != digest.String() {
		return v1.Hash{}, fmt.Errorf("reference pins %s but the image digest is %s", d.DigestStr(), digest)
	}
	ropts := append([]remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(authn.DefaultKeychain),
	}, opts.Remote...)
	if err := remote.Write(r, img, ropts...); err != nil {
		return v1.Hash{}, fmt.Errorf("pushing %s: %w", r, err)
	}
	return digest, nil
}

package deploy

import (
	"archive/tar"
	"debug/elf"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestImagesAreStaticNonRootWithoutShell builds the images with `make
// image` and checks each one's configuration (entrypoint, user) and its
// files: the binary, the CA bundle, passwd and group, nothing else (no
// shell). A full build takes minutes, so it runs only with
// OPENCONSULT_IMAGE_TEST=1 and podman or docker installed; `make test`
// skips it.
func TestImagesAreStaticNonRootWithoutShell(t *testing.T) {
	if os.Getenv("OPENCONSULT_IMAGE_TEST") != "1" {
		t.Skip("set OPENCONSULT_IMAGE_TEST=1 to build the container images (slow)")
	}
	engine, err := exec.LookPath("podman")
	if err != nil {
		if engine, err = exec.LookPath("docker"); err != nil {
			t.Skip("neither podman nor docker is installed")
		}
	}
	const prefix = "openconsult-test"
	mk := exec.Command("make", "image", "CONTAINER="+engine, "IMAGE_PREFIX="+prefix, "IMAGE_TAG=test")
	mk.Dir = ".."
	if out, err := mk.CombinedOutput(); err != nil {
		t.Fatalf("make image: %v\n%s", err, out)
	}
	for _, bin := range []string{"signal", "sfu", "turnd"} {
		t.Run(bin, func(t *testing.T) {
			ref := prefix + "/" + bin + ":test"
			out, err := exec.Command(engine, "image", "inspect", ref).Output()
			if err != nil {
				t.Fatalf("inspect %s: %v", ref, err)
			}
			var images []struct {
				Config struct {
					User       string
					Entrypoint []string
				}
			}
			if err := json.Unmarshal(out, &images); err != nil || len(images) != 1 {
				t.Fatalf("inspect %s: %v", ref, err)
			}
			c := images[0].Config
			if c.User != "65532:65532" || !slices.Equal(c.Entrypoint, []string{"/usr/bin/" + bin}) {
				t.Errorf("user %q, entrypoint %q", c.User, c.Entrypoint)
			}
			// A dynamically linked binary would not start in an image without libc.
			exe, err := elf.Open(filepath.Join("..", "bin", "image", bin))
			if err != nil {
				t.Fatal(err)
			}
			defer exe.Close()
			for _, p := range exe.Progs {
				if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
					t.Errorf("%s is dynamically linked", bin)
				}
			}
			files := imageFiles(t, engine, ref)
			want := []string{"etc/group", "etc/passwd", "etc/ssl/certs/ca-certificates.crt", "usr/bin/" + bin}
			if bin == "signal" {
				want = append(want, "var/lib/openconsult")
			}
			slices.Sort(want)
			if !slices.Equal(files, want) {
				t.Errorf("files %q, want only %q", files, want)
			}
		})
	}
}

// imageFiles lists the regular files and empty directories in the layers
// of an image saved as a docker archive.
func imageFiles(t *testing.T, engine, ref string) []string {
	t.Helper()
	archive := filepath.Join(t.TempDir(), "image.tar")
	if out, err := exec.Command(engine, "save", "--format", "docker-archive", "-o", archive, ref).CombinedOutput(); err != nil {
		// docker has no --format; its save writes a docker archive.
		if out2, err2 := exec.Command(engine, "save", "-o", archive, ref).CombinedOutput(); err2 != nil {
			t.Fatalf("save %s: %v\n%s\n%s", ref, err, out, out2)
		}
	}
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var files []string
	outer := tar.NewReader(f)
	for {
		h, err := outer.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasSuffix(h.Name, ".tar") && !strings.HasSuffix(h.Name, "/layer.tar") {
			continue
		}
		layer := tar.NewReader(outer)
		for {
			e, err := layer.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("layer %s: %v", h.Name, err)
			}
			name := strings.TrimSuffix(strings.TrimPrefix(e.Name, "./"), "/")
			switch {
			case e.Typeflag == tar.TypeDir && name != "var/lib/openconsult":
				continue // parents of the files
			default:
				files = append(files, name)
			}
		}
	}
	slices.Sort(files)
	return slices.Compact(files)
}

package azureblob_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/openconsult/openconsult/internal/eventually"
	"github.com/openconsult/openconsult/internal/syncbuf"
	"github.com/openconsult/openconsult/objstore"
	"github.com/openconsult/openconsult/objstore/azureblob"
	"github.com/openconsult/openconsult/objstore/objstoretest"
)

// The emulator's well-known development account (public, the same in
// every Azurite).
const (
	devAccount = "devstoreaccount1"
	devKey     = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

// azurite is an azurite-blob process on a loopback port, with its data
// in a temporary directory.
type azurite struct {
	path, dir string
	port      int
	cmd       *exec.Cmd
	out       *syncbuf.Buffer
}

// startAzurite starts the emulator (npm install -g azurite@3.37.0). Without
// it the test is skipped, unless CI is set: there it must run.
func startAzurite(t *testing.T) *azurite {
	t.Helper()
	path, err := exec.LookPath("azurite-blob")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("azurite-blob not found, and CI is set: install it with npm install -g azurite@3.37.0")
		}
		t.Skip("azurite-blob not found: npm install -g azurite@3.37.0 to run the Azure Blob backend's tests")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	a := &azurite{path: path, dir: t.TempDir(), port: port}
	t.Cleanup(a.stop) // before start, so an emulator that is slow to listen is stopped too
	t.Cleanup(func() {
		if t.Failed() && a.out != nil {
			t.Logf("azurite's output:\n%s", a.out.String())
		}
	})
	a.start(t)
	return a
}

// start runs the emulator; the test's end stops it.
func (a *azurite) start(t *testing.T) {
	t.Helper()
	a.out = &syncbuf.Buffer{}
	a.cmd = exec.Command(a.path, "--blobHost", "127.0.0.1", "--blobPort", strconv.Itoa(a.port),
		"--location", a.dir, "--silent", "--skipApiVersionCheck", "--disableProductStyleUrl")
	a.cmd.Stdout, a.cmd.Stderr = a.out, a.out
	if err := a.cmd.Start(); err != nil {
		t.Fatalf("start azurite: %v", err)
	}
	// Node.js's first start on a fresh machine, with a cold disk cache, has
	// taken more than 30 s.
	eventually.True(t, 2*time.Minute, "azurite listens", func() bool {
		c, err := net.DialTimeout("tcp", a.addr(), 200*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

func (a *azurite) stop() {
	if a.cmd == nil {
		return
	}
	_ = a.cmd.Process.Kill()
	_ = a.cmd.Wait()
	a.cmd = nil
}

func (a *azurite) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(a.port)) }

func (a *azurite) accountURL() string { return "http://" + a.addr() + "/" + devAccount }

// connectionString reaches the emulator's account at addr (the emulator's
// own or a proxy's).
func connectionString(addr string) string {
	return fmt.Sprintf("DefaultEndpointsProtocol=http;AccountName=%s;AccountKey=%s;BlobEndpoint=http://%s/%s;", devAccount, devKey, addr, devAccount)
}

func containerName(t *testing.T) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return "objects-" + hex.EncodeToString(b)
}

func open(t *testing.T, cfg azureblob.Config) *azureblob.Backend {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := azureblob.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestAzureBlobBackendContract(t *testing.T) {
	a := startAzurite(t)
	objstoretest.Run(t, func(t *testing.T) objstoretest.Harness {
		// The backend reaches the emulator through a proxy the outage case
		// cuts: the storage account becomes unreachable, as in a network
		// outage, and comes back with everything it held.
		p := newProxy(t, a.addr())
		b := open(t, azureblob.Config{Container: containerName(t), ConnectionString: connectionString(p.addr), Retries: -1})
		return objstoretest.Harness{Backend: b, Break: p.cut, Repair: p.restore}
	})
}

func TestAzureBlobCredentials(t *testing.T) {
	a := startAzurite(t)
	ctx := context.Background()
	name := containerName(t)
	byKey := open(t, azureblob.Config{Container: name, AccountURL: a.accountURL(), AccountName: devAccount, AccountKey: devKey})
	if _, err := byKey.Put(ctx, "creds/by-key", bytes.NewReader([]byte("k"))); err != nil {
		t.Fatalf("account key: %v", err)
	}
	byConn := open(t, azureblob.Config{Container: name, ConnectionString: connectionString(a.addr())})
	if l, err := byConn.List(ctx, "creds/"); err != nil || len(l) != 1 {
		t.Fatalf("connection string: %v, %v", l, err)
	}
	sas := containerSAS(t, a, name)
	bySAS := open(t, azureblob.Config{Container: name, AccountURL: a.accountURL(), SAS: sas})
	if l, err := bySAS.List(ctx, "creds/"); err != nil || len(l) != 1 {
		t.Fatalf("SAS: %v, %v", l, err)
	}
	wrong := azureblob.Config{Container: name, AccountURL: a.accountURL(), AccountName: devAccount, AccountKey: "AAAA" + devKey[4:], Retries: -1}
	if _, err := azureblob.Open(ctx, wrong); err == nil {
		t.Fatal("a wrong account key opened the container")
	} else if bytes.Contains([]byte(err.Error()), []byte(devKey[4:20])) {
		t.Fatalf("the error shows the key: %v", err)
	}
	if _, err := bySAS.Get(ctx, "creds/missing", 0, -1); err != objstore.ErrNotFound {
		t.Fatalf("missing blob: %v", err)
	}
}

// Package azureblob is the objstore.Backend on Azure Blob Storage: one
// block blob per object in one container. A Put stages the object's bytes
// as blocks of 1 MiB (StageBlock) and commits them in one CommitBlockList,
// so a blob appears, or replaces an older one, only whole; blocks of a
// Put that failed are never committed and Azure discards them.
//
// It imports only the container, blob, block blob and error sub-packages
// of the Azure SDK, not its root package. go.mod keeps azblob at v1.8.0:
// from v1.8.1 on its container package links Apache Arrow, for a list
// format this package does not use, which adds 8 MB to signal; the fixes
// since then are in code paths it does not use either (batches, version
// SAS signing, CRC64 structured messages, DownloadBuffer).
package azureblob

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/openconsult/openconsult/objstore"
)

// blockSize is the bytes of one staged block, and what a Put holds in
// memory.
const blockSize = 1 << 20

// Config names the container and one way to authenticate. With a
// ConnectionString nothing else is needed but Container; otherwise
// AccountURL (https://ACCOUNT.blob.core.windows.net) with AccountKey, or
// SAS, or neither: then azidentity's default credential (a managed
// identity, workload identity or the environment's service principal).
type Config struct {
	Container        string
	ConnectionString string
	AccountURL       string
	AccountName      string // with AccountKey; default: the first label of AccountURL's host
	AccountKey       string
	SAS              string // a SAS token (the query string, with or without '?')
	// Retries of a failed request (the SDK's default when 0; -1 for none).
	Retries int
}

// Method names the way Config authenticates, for logs.
func (c Config) Method() string {
	switch {
	case c.ConnectionString != "":
		return "connection string"
	case c.AccountKey != "":
		return "account key"
	case c.SAS != "":
		return "SAS"
	default:
		return "default credential"
	}
}

// Backend stores objects as block blobs in one container.
type Backend struct {
	c *container.Client
}

// Open connects to the container, creating it when it does not exist
// (which needs a credential allowed to).
func Open(ctx context.Context, cfg Config) (*Backend, error) {
	c, err := client(cfg)
	if err != nil {
		return nil, fmt.Errorf("azure blob storage (%s): %w", cfg.Method(), err)
	}
	b := &Backend{c: c}
	// Listing needs only the data permissions a SAS or a role such as
	// Storage Blob Data Contributor grants.
	one := int32(1)
	if _, err := c.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{MaxResults: &one}).NextPage(ctx); err != nil {
		if !bloberror.HasCode(err, bloberror.ContainerNotFound) {
			return nil, fmt.Errorf("azure blob container %s (%s): %w", cfg.Container, cfg.Method(), brief(err))
		}
		if _, err := c.Create(ctx, nil); err != nil && !bloberror.HasCode(err, bloberror.ContainerAlreadyExists) {
			return nil, fmt.Errorf("create azure blob container %s: %w", cfg.Container, brief(err))
		}
	}
	return b, nil
}

func client(cfg Config) (*container.Client, error) {
	if cfg.Container == "" {
		return nil, errors.New("no container named")
	}
	opts := &container.ClientOptions{}
	if cfg.Retries != 0 {
		opts.Retry = policy.RetryOptions{MaxRetries: int32(cfg.Retries)}
	}
	if cfg.ConnectionString != "" {
		return container.NewClientFromConnectionString(cfg.ConnectionString, cfg.Container, opts)
	}
	if cfg.AccountURL == "" {
		return nil, errors.New("an account URL or a connection string is required")
	}
	u := strings.TrimRight(cfg.AccountURL, "/") + "/" + cfg.Container
	switch {
	case cfg.AccountKey != "":
		name := cfg.AccountName
		if name == "" {
			name = accountFromURL(cfg.AccountURL)
		}
		cred, err := container.NewSharedKeyCredential(name, cfg.AccountKey)
		if err != nil {
			return nil, fmt.Errorf("account key: %w", err)
		}
		return container.NewClientWithSharedKeyCredential(u, cred, opts)
	case cfg.SAS != "":
		return container.NewClientWithNoCredential(u+"?"+strings.TrimPrefix(cfg.SAS, "?"), opts)
	default:
		cred, err := azidentity.NewDefaultAzureCredential(nil)
		if err != nil {
			return nil, fmt.Errorf("default credential: %w", err)
		}
		return container.NewClient(u, cred, opts)
	}
}

// accountFromURL returns ACCOUNT from https://ACCOUNT.blob.core.windows.net.
func accountFromURL(u string) string {
	host := strings.TrimPrefix(strings.TrimPrefix(u, "https://"), "http://")
	name, _, _ := strings.Cut(host, ".")
	return name
}

// brief keeps the service's error code and status and drops the raw
// response the SDK's errors carry (request headers and body), and the
// URL of a request that did not reach the service (it may hold a SAS).
func brief(err error) error {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return fmt.Errorf("%s (HTTP %d)", re.ErrorCode, re.StatusCode)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s request to the storage account failed: %w", ue.Op, ue.Err)
	}
	return err
}

// Put implements objstore.Backend.
func (b *Backend) Put(ctx context.Context, name string, r io.Reader) (int64, error) {
	if err := objstore.CheckName(name); err != nil {
		return 0, err
	}
	bb := b.c.NewBlockBlobClient(name)
	// Block ids of one Put: its random tag and the block's number, all of
	// one length as the service requires.
	var tag [12]byte
	if _, err := rand.Read(tag[:]); err != nil {
		return 0, fmt.Errorf("block ids: %w", err)
	}
	buf := make([]byte, blockSize)
	var ids []string
	var total int64
	r = objstore.ContextReader(ctx, r)
	for {
		n, err := io.ReadFull(r, buf)
		if n > 0 {
			id := blockID(tag, len(ids))
			if _, err := bb.StageBlock(ctx, id, nopCloser{bytes.NewReader(buf[:n])}, nil); err != nil {
				return 0, fmt.Errorf("stage block %d of %s: %w", len(ids), name, brief(err))
			}
			ids = append(ids, id)
			total += int64(n)
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			return 0, fmt.Errorf("read object %s: %w", name, err)
		}
	}
	if _, err := bb.CommitBlockList(ctx, ids, nil); err != nil {
		return 0, fmt.Errorf("commit %s: %w", name, brief(err))
	}
	return total, nil
}

func blockID(tag [12]byte, n int) string {
	var id [16]byte
	copy(id[:], tag[:])
	binary.BigEndian.PutUint32(id[12:], uint32(n))
	return base64.StdEncoding.EncodeToString(id[:])
}

type nopCloser struct{ io.ReadSeeker }

func (nopCloser) Close() error { return nil }

// Get implements objstore.Backend.
func (b *Backend) Get(ctx context.Context, name string, off, length int64) (io.ReadCloser, error) {
	if err := objstore.CheckName(name); err != nil {
		return nil, err
	}
	if off < 0 {
		return nil, fmt.Errorf("read object %s: negative offset", name)
	}
	if length == 0 {
		return io.NopCloser(bytes.NewReader(nil)), nil
	}
	rng := blob.HTTPRange{Offset: off}
	if length > 0 {
		rng.Count = length
	}
	resp, err := b.c.NewBlobClient(name).DownloadStream(ctx, &blob.DownloadStreamOptions{Range: rng})
	switch {
	case bloberror.HasCode(err, bloberror.BlobNotFound, bloberror.ContainerNotFound):
		return nil, objstore.ErrNotFound
	case bloberror.HasCode(err, bloberror.InvalidRange):
		// From the end of an object on: nothing to read.
		return io.NopCloser(bytes.NewReader(nil)), nil
	case err != nil:
		return nil, fmt.Errorf("read object %s: %w", name, brief(err))
	}
	return resp.Body, nil
}

// Delete implements objstore.Backend.
func (b *Backend) Delete(ctx context.Context, name string) error {
	if err := objstore.CheckName(name); err != nil {
		return err
	}
	_, err := b.c.NewBlobClient(name).Delete(ctx, nil)
	if err != nil && !bloberror.HasCode(err, bloberror.BlobNotFound) {
		return fmt.Errorf("delete object %s: %w", name, brief(err))
	}
	return nil
}

// List implements objstore.Backend.
func (b *Backend) List(ctx context.Context, prefix string) ([]objstore.Info, error) {
	if err := objstore.CheckPrefix(prefix); err != nil {
		return nil, err
	}
	var out []objstore.Info
	pager := b.c.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{Prefix: &prefix})
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list objects: %w", brief(err))
		}
		for _, item := range page.Segment.BlobItems {
			if item.Name == nil {
				continue
			}
			i := objstore.Info{Name: *item.Name}
			if item.Properties != nil && item.Properties.ContentLength != nil {
				i.Size = *item.Properties.ContentLength
			}
			out = append(out, i)
		}
	}
	return out, nil
}

package consult

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/openconsult/openconsult/objstore"
	"github.com/openconsult/openconsult/store"
)

func pdfOf(n int) []byte {
	return append([]byte("%PDF-1.7\n"), bytes.Repeat([]byte("x"), n-9)...)
}

func readDocument(t *testing.T, s *Service, consultID, id string) (OpenedDocument, []byte) {
	t.Helper()
	d, err := s.OpenDocument(context.Background(), consultID, id)
	if err != nil {
		t.Fatalf("OpenDocument: %v", err)
	}
	defer d.Content.Close()
	b, err := io.ReadAll(d.Content)
	if err != nil {
		t.Fatalf("read document: %v", err)
	}
	return d, b
}

func TestDocumentsAreCheckedSealedAndListed(t *testing.T) {
	ctx := context.Background()
	s, db, _ := newService(t)
	v, _ := s.Create(ctx, "u_doc", "", false)
	pdf := pdfOf(100_000)
	tests := []struct {
		name string
		data []byte
		want error
	}{
		{"empty", nil, ErrDocumentEmpty},
		{"html disguised", []byte("<html><script>alert(1)</script>"), ErrDocumentType},
		{"executable", []byte("MZ\x90\x00\x03"), ErrDocumentType},
		{"too large", pdfOf(MaxDocumentBytes + 1), ErrDocumentSize},
	}
	for _, tt := range tests {
		if _, err := s.ShareDocument(ctx, v.ID, "g_pat", "Pat", "x", bytes.NewReader(tt.data)); !errors.Is(err, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
	}
	if files, _, _ := db.DocumentUsage(ctx, v.ID); files != 0 {
		t.Fatalf("refused documents left %d rows", files)
	}
	m, err := s.ShareDocument(ctx, v.ID, "g_pat", "Pat", `..\..\Referral "letter".pdf`, bytes.NewReader(pdf))
	if err != nil || m.File == nil || m.File.Type != "application/pdf" || m.File.Name != `Referral _letter_.pdf` {
		t.Fatalf("ShareDocument = %+v, %v", m, err)
	}
	d, _ := db.DocumentByID(ctx, v.ID, m.File.ID)
	if len(d.DataEnc) != 0 || d.KeyEnc == nil || bytes.Contains(d.NameEnc, []byte("Referral")) {
		t.Fatal("document row holds its content or its name in clear")
	}
	if !bytes.HasPrefix([]byte(d.Object), []byte("documents/o_")) {
		t.Fatalf("object name %q is not a random id", d.Object)
	}
	got, data := readDocument(t, s, v.ID, m.File.ID)
	if got.Name != m.File.Name || got.Type != "application/pdf" || got.Size != int64(len(pdf)) || !bytes.Equal(data, pdf) {
		t.Fatalf("OpenDocument = %q %q %d, %d bytes", got.Name, got.Type, got.Size, len(data))
	}
	if _, err := s.OpenDocument(ctx, "c_other", m.File.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("document opened through another consult: %v", err)
	}
	h, _ := s.ChatHistory(ctx, v.ID)
	if len(h) != 1 || h[0].File == nil || h[0].File.ID != m.File.ID {
		t.Fatalf("history %+v", h)
	}
}

func TestDocumentQuotaRefusesTheFileThatWouldExceedIt(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name   string
		limits DocumentLimits
		sizes  []int // shared in order; the last is refused
	}{
		{"files", DocumentLimits{Files: 2, Bytes: 1 << 20}, []int{1000, 1000, 1000}},
		{"bytes", DocumentLimits{Files: 10, Bytes: 5000}, []int{2000, 2000, 1001}},
		{"bytes used up exactly", DocumentLimits{Files: 10, Bytes: 4000}, []int{2000, 2000, 10}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, db, _ := newService(t)
			s.Documents = tt.limits
			v, _ := s.Create(ctx, "u_doc", "", false)
			for i, n := range tt.sizes {
				_, err := s.ShareDocument(ctx, v.ID, "g_pat", "Pat", "x.pdf", bytes.NewReader(pdfOf(n)))
				last := i == len(tt.sizes)-1
				if last && !errors.Is(err, ErrDocumentQuota) || !last && err != nil {
					t.Fatalf("document %d: %v", i, err)
				}
			}
			if files, _, _ := db.DocumentUsage(ctx, v.ID); files != len(tt.sizes)-1 {
				t.Fatalf("%d documents stored", files)
			}
			if objs := objectCount(t, s); objs != len(tt.sizes)-1 {
				t.Fatalf("%d objects stored, want %d: the refused one was kept", objs, len(tt.sizes)-1)
			}
		})
	}
}

func objectCount(t *testing.T, s *Service) int {
	t.Helper()
	type backed interface{ Backend() objstore.Backend }
	l, err := s.Objects.(backed).Backend().List(context.Background(), "documents/")
	if err != nil {
		t.Fatal(err)
	}
	return len(l)
}

func TestUploadRateIsPerMemberAndRecovers(t *testing.T) {
	ctx := context.Background()
	s, _, now := newService(t)
	s.Uploads = NewUploadLimiter(3)
	v, _ := s.Create(ctx, "u_doc", "", false)
	share := func(member string) error {
		_, err := s.ShareDocument(ctx, v.ID, member, "Someone", "x.pdf", bytes.NewReader(pdfOf(100)))
		return err
	}
	for i := range 3 {
		if err := share("g_pat"); err != nil {
			t.Fatalf("upload %d: %v", i, err)
		}
	}
	err := share("g_pat")
	var rateErr *UploadRateError
	if !errors.Is(err, ErrUploadRate) || !errors.As(err, &rateErr) || rateErr.RetryAfter <= 0 || rateErr.RetryAfter > 20*time.Second {
		t.Fatalf("fourth upload in a minute: %v", err)
	}
	if err := share("u_doc"); err != nil {
		t.Fatalf("another member is limited too: %v", err)
	}
	*now = now.Add(20 * time.Second)
	if err := share("g_pat"); err != nil {
		t.Fatalf("after 20 s: %v", err)
	}
	if err := share("g_pat"); !errors.Is(err, ErrUploadRate) {
		t.Fatalf("second upload after 20 s: %v", err)
	}
}

// legacyDocument stores a document the way releases before the object
// store did: its content sealed in the row.
func legacyDocument(t *testing.T, s *Service, db *store.DB, consultID string, seq int64, content []byte) string {
	t.Helper()
	ctx := context.Background()
	id := "d_legacy" + string(rune('0'+seq))
	nameEnc, _ := s.Sealer.SealString("old.pdf", docNameAAD(id))
	dataEnc, _ := s.Sealer.SealString(string(content), docDataAAD(id))
	chatName, _ := s.Sealer.SealString("Pat", chatAAD("name", consultID, seq))
	chatText, _ := s.Sealer.SealString("shared old.pdf", chatAAD("text", consultID, seq))
	now := s.Now()
	_, err := db.ShareDocument(ctx, store.Document{ID: id, ConsultID: consultID, MemberID: "g_pat", NameEnc: nameEnc, ContentType: "application/pdf",
		Size: int64(len(content)), DataEnc: dataEnc, CreatedAt: now}, store.DocumentQuota{},
		func(int64) (store.ChatRow, error) {
			return store.ChatRow{ConsultID: consultID, Seq: seq, MemberID: "g_pat", NameEnc: chatName, TextEnc: chatText, CreatedAt: now, DocumentID: id}, nil
		})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestMoveDocumentsIntoTheObjectStoreOnceAndKeepsThemReadable(t *testing.T) {
	ctx := context.Background()
	s, db, _ := newService(t)
	v, _ := s.Create(ctx, "u_doc", "", false)
	contents := [][]byte{pdfOf(10), pdfOf(70_000), pdfOf(200_000), pdfOf(9), pdfOf(66_000), pdfOf(12)}
	var ids []string
	for i, c := range contents {
		ids = append(ids, legacyDocument(t, s, db, v.ID, int64(i+1), c))
	}
	// Unmoved documents are readable from the row.
	if _, b := readDocument(t, s, v.ID, ids[1]); !bytes.Equal(b, contents[1]) {
		t.Fatal("unmoved document differs")
	}
	// Another process moves one between this one's read and its update
	// (it wins the race): this one's copy is deleted, the row keeps the
	// winner's object.
	d0, _ := db.DocumentByID(ctx, v.ID, ids[0])
	winner, _ := s.Objects.Put(ctx, "documents/o_winner", bytes.NewReader(contents[0]))
	if ok, err := db.MoveDocument(ctx, ids[0], winner.Name, winner.SealedKey); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if ok, err := s.moveDocument(ctx, d0); ok || err != nil {
		t.Fatalf("moving a moved document: %v, %v", ok, err)
	}
	moved, err := s.MoveDocuments(ctx)
	if err != nil || moved != len(contents)-1 {
		t.Fatalf("MoveDocuments = %d, %v", moved, err)
	}
	if again, err := s.MoveDocuments(ctx); again != 0 || err != nil {
		t.Fatalf("second run moved %d, %v", again, err)
	}
	if n := objectCount(t, s); n != len(contents) {
		t.Fatalf("%d objects for %d documents", n, len(contents))
	}
	for i, id := range ids {
		d, _ := db.DocumentByID(ctx, v.ID, id)
		if len(d.DataEnc) != 0 || d.KeyEnc == nil {
			t.Fatalf("document %d still in the row", i)
		}
		if _, b := readDocument(t, s, v.ID, id); !bytes.Equal(b, contents[i]) {
			t.Fatalf("document %d differs after the move", i)
		}
	}
}

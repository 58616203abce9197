package audit_test

import (
	"bytes"
	"encoding/hex"
	"testing"

	"github.com/openconsult/openconsult/audit"
	"github.com/transparency-dev/merkle/rfc6962"
)

// The reference vectors of RFC 6962's reference implementation
// (certificate-transparency, merkle_tree_test.cc): eight leaf inputs, the
// hashes of every complete subtree, the root of the tree of each size
// from 0 to 8, and audit paths.
var (
	ctLeafInputs = []string{"", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"}
	ctNodes      = [][]string{{
		"6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
		"96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
		"0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
		"07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
		"bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
		"4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
		"b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
		"46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
	}, {
		"fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
		"5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
		"0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
		"ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
	}, {
		"d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
		"6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
	}, {
		"5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
	}}
	ctRoots = []string{
		"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", // empty tree: SHA-256 of nothing
		"6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
		"fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
		"aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
		"d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
		"4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
		"76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
		"ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
		"5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
	}
	// Leaf numbers are 1-based, as in the reference.
	ctPaths = []struct {
		leaf, size uint64
		path       []string
	}{
		{1, 1, nil},
		{1, 8, []string{
			"96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
			"5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
			"6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
		}},
		{6, 8, []string{
			"bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
			"ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
			"d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
		}},
		{3, 3, []string{"fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"}},
		{2, 5, []string{
			"6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
			"5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
			"bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
		}},
	}
)

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func ctLeaves(t *testing.T) [][]byte {
	var leaves [][]byte
	for _, in := range ctLeafInputs {
		leaves = append(leaves, audit.LeafHash(unhex(t, in)))
	}
	return leaves
}

func TestHashingMatchesRFC6962Vectors(t *testing.T) {
	h := rfc6962.DefaultHasher
	tests := []struct {
		name string
		got  []byte
		want string
	}{
		// echo -n | sha256sum
		{"empty tree", h.EmptyRoot(), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
		// printf '\x00' | sha256sum: an empty leaf is not an empty tree
		{"empty leaf", audit.LeafHash(nil), "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"},
		// printf '\x00L123456' | sha256sum
		{"leaf", audit.LeafHash([]byte("L123456")), "395aa064aa4c29f7010acfe3f25db9485bbd4b91897b6ad7ad547639252b4d56"},
		// printf '\x01N123N456' | sha256sum
		{"node", h.HashChildren([]byte("N123"), []byte("N456")), "aa217fe888e47007fa15edab33c2b492a722cb106c64667fc2b044444de66bbb"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := hex.EncodeToString(tt.got); got != tt.want {
				t.Fatalf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestSubtreeHashesMatchReferenceVectors(t *testing.T) {
	levels := audit.DenseLevelsForTest(ctLeaves(t))
	if len(levels) != len(ctNodes) {
		t.Fatalf("%d levels, want %d", len(levels), len(ctNodes))
	}
	for l, want := range ctNodes {
		if len(levels[l]) != len(want) {
			t.Fatalf("level %d has %d nodes, want %d", l, len(levels[l]), len(want))
		}
		for i, w := range want {
			if got := hex.EncodeToString(levels[l][i][:]); got != w {
				t.Errorf("node %d/%d = %s, want %s", l, i, got, w)
			}
		}
	}
}

func TestTreeRootsMatchReferenceVectorsForZeroToEightLeaves(t *testing.T) {
	leaves := ctLeaves(t)
	for n, want := range ctRoots {
		if got := hex.EncodeToString(audit.RunningRootForTest(leaves[:n])); got != want {
			t.Errorf("running root of %d leaves = %s, want %s", n, got, want)
		}
		if got := hex.EncodeToString(audit.DenseRootForTest(leaves[:n])); got != want {
			t.Errorf("export tree root of %d leaves = %s, want %s", n, got, want)
		}
	}
}

func TestInclusionProofsMatchReferenceVectors(t *testing.T) {
	leaves := ctLeaves(t)
	for _, tt := range ctPaths {
		got, err := audit.InclusionForTest(leaves[:tt.size], tt.leaf-1)
		if err != nil {
			t.Fatalf("leaf %d of %d: %v", tt.leaf, tt.size, err)
		}
		if len(got) != len(tt.path) {
			t.Fatalf("leaf %d of %d: path of %d hashes, want %d", tt.leaf, tt.size, len(got), len(tt.path))
		}
		for i := range got {
			if !bytes.Equal(got[i], unhex(t, tt.path[i])) {
				t.Errorf("leaf %d of %d: hash %d = %x, want %s", tt.leaf, tt.size, i, got[i], tt.path[i])
			}
		}
	}
	if _, err := audit.InclusionForTest(leaves[:3], 3); err == nil {
		t.Error("proof for a leaf outside the tree")
	}
}

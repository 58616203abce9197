package audit

import (
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
)

var hasher = rfc6962.DefaultHasher

// tree is a growing RFC 6962 tree held as a compact range: O(log n) memory
// whatever the log's length.
type tree struct {
	r *compact.Range
}

func newTree() *tree {
	f := &compact.RangeFactory{Hash: hasher.HashChildren}
	return &tree{r: f.NewEmptyRange(0)}
}

func (t *tree) append(leaf []byte) {
	// Append fails only for a range not starting at 0, which this is not.
	_ = t.r.Append(leaf, nil)
}

func (t *tree) size() uint64 { return t.r.End() }

func (t *tree) root() []byte {
	if t.r.End() == 0 {
		return hasher.EmptyRoot()
	}
	root, _ := t.r.GetRootHash(nil)
	return root
}

// rootOf is MTH(D[n]) of RFC 6962 section 2.1.
func rootOf(leaves [][]byte) []byte {
	switch len(leaves) {
	case 0:
		return hasher.EmptyRoot()
	case 1:
		return leaves[0]
	}
	k := splitPoint(len(leaves))
	return hasher.HashChildren(rootOf(leaves[:k]), rootOf(leaves[k:]))
}

// inclusionPath is PATH(m, D[n]) of RFC 6962 section 2.1.1.
func inclusionPath(m int, leaves [][]byte) [][]byte {
	if len(leaves) <= 1 {
		return nil
	}
	k := splitPoint(len(leaves))
	if m < k {
		return append(inclusionPath(m, leaves[:k]), rootOf(leaves[k:]))
	}
	return append(inclusionPath(m-k, leaves[k:]), rootOf(leaves[:k]))
}

// splitPoint is the largest power of two smaller than n.
func splitPoint(n int) int {
	k := 1
	for k<<1 < n {
		k <<= 1
	}
	return k
}

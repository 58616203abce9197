package audit

import (
	"fmt"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

// hasher is RFC 6962's SHA-256 tree hashing. The library's value is
// immutable; naming it here keeps every call site on the same scheme.
var hasher = rfc6962.DefaultHasher

// LeafHash is the RFC 6962 leaf hash of canonical entry bytes:
// SHA-256(0x00 || canonical).
func LeafHash(canonical []byte) []byte { return hasher.HashLeaf(canonical) }

// runningTree is a growing RFC 6962 tree held as a compact range, so its
// root costs O(log n) memory whatever the log's length.
type runningTree struct {
	r *compact.Range
}

func newRunningTree() *runningTree {
	f := &compact.RangeFactory{Hash: hasher.HashChildren}
	return &runningTree{r: f.NewEmptyRange(0)}
}

func (t *runningTree) append(leaf []byte) {
	// Append fails only for a range that does not start at 0, which this
	// one always does.
	if err := t.r.Append(leaf, nil); err != nil {
		panic(fmt.Sprintf("audit: compact range append: %v", err))
	}
}

func (t *runningTree) size() uint64 { return t.r.End() }

func (t *runningTree) root() []byte {
	if t.r.End() == 0 {
		return hasher.EmptyRoot()
	}
	root, err := t.r.GetRootHash(nil)
	if err != nil {
		panic(fmt.Sprintf("audit: compact range root: %v", err))
	}
	return root
}

// denseTree keeps every complete subtree hash of a tree of fixed size, so
// that the inclusion proof of any leaf is a handful of lookups. It costs
// about 64 bytes per leaf; exports hold one while they are written.
type denseTree struct {
	levels [][][32]byte // levels[0] are the leaf hashes
}

func newDenseTree(leaves [][32]byte) *denseTree {
	d := &denseTree{levels: [][][32]byte{leaves}}
	for cur := leaves; len(cur) > 1; {
		next := make([][32]byte, len(cur)/2)
		for i := range next {
			copy(next[i][:], hasher.HashChildren(cur[2*i][:], cur[2*i+1][:]))
		}
		d.levels = append(d.levels, next)
		cur = next
	}
	return d
}

func (d *denseTree) size() uint64 { return uint64(len(d.levels[0])) }

// node returns the hash of a complete subtree.
func (d *denseTree) node(id compact.NodeID) ([]byte, error) {
	if int(id.Level) >= len(d.levels) || id.Index >= uint64(len(d.levels[id.Level])) {
		return nil, fmt.Errorf("node %d/%d outside a tree of %d leaves", id.Level, id.Index, d.size())
	}
	h := d.levels[id.Level][id.Index]
	return h[:], nil
}

// root is MTH(D[n]) of RFC 6962 section 2.1: the complete subtrees covering
// [0, n) folded from the right.
func (d *denseTree) root() []byte {
	ids := compact.RangeNodes(0, d.size(), nil)
	if len(ids) == 0 {
		return hasher.EmptyRoot()
	}
	root, _ := d.node(ids[len(ids)-1])
	for i := len(ids) - 2; i >= 0; i-- {
		left, _ := d.node(ids[i])
		root = hasher.HashChildren(left, root)
	}
	return root
}

// inclusion is the RFC 6962 audit path of leaf index in the whole tree.
func (d *denseTree) inclusion(index uint64) ([][]byte, error) {
	return d.proof(proof.Inclusion(index, d.size()))
}

func (d *denseTree) proof(nodes proof.Nodes, err error) ([][]byte, error) {
	if err != nil {
		return nil, err
	}
	hashes := make([][]byte, len(nodes.IDs))
	for i, id := range nodes.IDs {
		if hashes[i], err = d.node(id); err != nil {
			return nil, err
		}
	}
	// Rehash folds the nodes right of the leaf's subtree into the one
	// ephemeral node a non-perfect tree needs.
	return nodes.Rehash(hashes, hasher.HashChildren)
}

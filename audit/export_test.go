package audit

// Hooks into the tree code for the RFC 6962 vectors.

// RunningRootForTest is the root of leaves through the compact range.
func RunningRootForTest(leaves [][]byte) []byte {
	t := newRunningTree()
	for _, l := range leaves {
		t.append(l)
	}
	return t.root()
}

func denseForTest(leaves [][]byte) *denseTree {
	fixed := make([][32]byte, len(leaves))
	for i, l := range leaves {
		fixed[i] = [32]byte(l)
	}
	return newDenseTree(fixed)
}

// DenseRootForTest is the root of leaves through the tree exports use.
func DenseRootForTest(leaves [][]byte) []byte { return denseForTest(leaves).root() }

// DenseLevelsForTest returns every complete subtree hash, by level.
func DenseLevelsForTest(leaves [][]byte) [][][32]byte { return denseForTest(leaves).levels }

// InclusionForTest is the audit path exports carry for leaf index.
func InclusionForTest(leaves [][]byte, index uint64) ([][]byte, error) {
	return denseForTest(leaves).inclusion(index)
}

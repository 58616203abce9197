package azureblob_test

import (
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"
)

// containerSAS signs a SAS token for the container with the account key.
func containerSAS(t *testing.T, a *azurite, name string) string {
	t.Helper()
	cred, err := container.NewSharedKeyCredential(devAccount, devKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := container.NewClientWithSharedKeyCredential(a.accountURL()+"/"+name, cred, nil)
	if err != nil {
		t.Fatal(err)
	}
	u, err := c.GetSASURL(sas.ContainerPermissions{Read: true, Write: true, Create: true, Delete: true, List: true}, time.Now().Add(time.Hour), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, q, _ := cut(u)
	return q
}

func cut(u string) (string, string, bool) {
	for i := range u {
		if u[i] == '?' {
			return u[:i], u[i+1:], true
		}
	}
	return u, "", false
}

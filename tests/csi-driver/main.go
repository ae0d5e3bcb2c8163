// arca-test-csi: the CSI driver of Arca's test environment (scripts/testenv.sh).
//
// No CSI driver that carries data is served by the Go module proxy (docs/testing.md), so
// the test clusters run this one: block volumes only, each a sparse file under --dir that
// the node attaches as a loop device. Everything around it is real: the kubelet finds it
// through its plugin registration socket, the external-provisioner and csi-snapshotter
// sidecars call its controller service, the snapshot controller binds the snapshots.
//
//   - CreateVolume: a file of the requested size, or a copy of a snapshot's or a volume's;
//   - CreateSnapshot: a copy of the volume's file (a point-in-time copy, as storage makes);
//   - NodePublishVolume: a loop device on the file, bind-mounted where the kubelet asks;
//   - Delete*, NodeUnpublishVolume: the reverse.
//
// One process serves the identity, controller and node services on --endpoint and the
// kubelet's registration service on --registration-socket.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
)

const version = "0.1.0"

type driver struct {
	csi.UnimplementedIdentityServer
	csi.UnimplementedControllerServer
	csi.UnimplementedNodeServer
	name, nodeID, dir, endpoint string
	mu                          sync.Mutex // one volume operation at a time: files are copied whole
}

// Ids become file names: the sidecars name volumes pvc-<uid> and snapshots snapshot-<uid>.
var safeID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

func (d *driver) volumeFile(id string) (string, error) {
	if !safeID.MatchString(id) {
		return "", status.Errorf(codes.InvalidArgument, "volume id %q", id)
	}
	return filepath.Join(d.dir, "volumes", id+".img"), nil
}

func (d *driver) snapshotFile(id string) (string, error) {
	if !safeID.MatchString(id) {
		return "", status.Errorf(codes.InvalidArgument, "snapshot id %q", id)
	}
	return filepath.Join(d.dir, "snapshots", id+".img"), nil
}

// ---- identity

func (d *driver) GetPluginInfo(context.Context, *csi.GetPluginInfoRequest) (*csi.GetPluginInfoResponse, error) {
	return &csi.GetPluginInfoResponse{Name: d.name, VendorVersion: version}, nil
}

func (d *driver) GetPluginCapabilities(context.Context, *csi.GetPluginCapabilitiesRequest) (*csi.GetPluginCapabilitiesResponse, error) {
	return &csi.GetPluginCapabilitiesResponse{Capabilities: []*csi.PluginCapability{{
		Type: &csi.PluginCapability_Service_{Service: &csi.PluginCapability_Service{Type: csi.PluginCapability_Service_CONTROLLER_SERVICE}},
	}}}, nil
}

func (d *driver) Probe(context.Context, *csi.ProbeRequest) (*csi.ProbeResponse, error) {
	return &csi.ProbeResponse{}, nil
}

// ---- controller

func (d *driver) ControllerGetCapabilities(context.Context, *csi.ControllerGetCapabilitiesRequest) (*csi.ControllerGetCapabilitiesResponse, error) {
	var caps []*csi.ControllerServiceCapability
	for _, c := range []csi.ControllerServiceCapability_RPC_Type{
		csi.ControllerServiceCapability_RPC_CREATE_DELETE_VOLUME,
		csi.ControllerServiceCapability_RPC_CREATE_DELETE_SNAPSHOT,
		csi.ControllerServiceCapability_RPC_CLONE_VOLUME,
	} {
		caps = append(caps, &csi.ControllerServiceCapability{
			Type: &csi.ControllerServiceCapability_Rpc{Rpc: &csi.ControllerServiceCapability_RPC{Type: c}},
		})
	}
	return &csi.ControllerGetCapabilitiesResponse{Capabilities: caps}, nil
}

func blockOnly(caps []*csi.VolumeCapability) error {
	for _, c := range caps {
		if c.GetBlock() == nil {
			return status.Error(codes.InvalidArgument, "this driver serves raw block volumes only (volumeMode: Block)")
		}
	}
	return nil
}

func (d *driver) CreateVolume(_ context.Context, req *csi.CreateVolumeRequest) (*csi.CreateVolumeResponse, error) {
	if err := blockOnly(req.GetVolumeCapabilities()); err != nil {
		return nil, err
	}
	file, err := d.volumeFile(req.GetName())
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	size := req.GetCapacityRange().GetRequiredBytes()
	if size == 0 {
		size = 1 << 20
	}
	if _, err := os.Stat(file); err != nil { // a retried CreateVolume finds its file
		var from string
		switch src := req.GetVolumeContentSource(); {
		case src.GetSnapshot() != nil:
			if from, err = d.snapshotFile(src.GetSnapshot().GetSnapshotId()); err != nil {
				return nil, err
			}
		case src.GetVolume() != nil:
			if from, err = d.volumeFile(src.GetVolume().GetVolumeId()); err != nil {
				return nil, err
			}
		}
		if err := writeFile(file, from, size); err != nil {
			return nil, err
		}
		log.Printf("volume %s: %d bytes (from %q)", req.GetName(), size, from)
	}
	info, err := os.Stat(file)
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &csi.CreateVolumeResponse{Volume: &csi.Volume{
		VolumeId: req.GetName(), CapacityBytes: info.Size(), ContentSource: req.GetVolumeContentSource(),
	}}, nil
}

// writeFile makes file as a copy of from ("" for none), at least size bytes long; whole or
// not at all.
func writeFile(file, from string, size int64) error {
	tmp := file + ".tmp"
	out, err := os.Create(tmp)
	if err != nil {
		return status.Error(codes.Internal, err.Error())
	}
	defer os.Remove(tmp)
	if from != "" {
		in, err := os.Open(from)
		if err != nil {
			out.Close()
			return status.Errorf(codes.NotFound, "content source: %v", err)
		}
		_, err = io.Copy(out, in)
		in.Close()
		if err != nil {
			out.Close()
			return status.Error(codes.Internal, err.Error())
		}
	}
	if info, err := out.Stat(); err == nil && info.Size() < size {
		err = out.Truncate(size)
		if err != nil {
			out.Close()
			return status.Error(codes.Internal, err.Error())
		}
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return status.Error(codes.Internal, err.Error())
	}
	if err := out.Close(); err != nil {
		return status.Error(codes.Internal, err.Error())
	}
	if err := os.Rename(tmp, file); err != nil {
		return status.Error(codes.Internal, err.Error())
	}
	return nil
}

func (d *driver) DeleteVolume(_ context.Context, req *csi.DeleteVolumeRequest) (*csi.DeleteVolumeResponse, error) {
	file, err := d.volumeFile(req.GetVolumeId())
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if loops := loopsOf(file); len(loops) > 0 {
		return nil, status.Errorf(codes.FailedPrecondition, "volume %s is still attached as %v", req.GetVolumeId(), loops)
	}
	if err := os.Remove(file); err != nil && !os.IsNotExist(err) {
		return nil, status.Error(codes.Internal, err.Error())
	}
	log.Printf("volume %s deleted", req.GetVolumeId())
	return &csi.DeleteVolumeResponse{}, nil
}

func (d *driver) ValidateVolumeCapabilities(_ context.Context, req *csi.ValidateVolumeCapabilitiesRequest) (*csi.ValidateVolumeCapabilitiesResponse, error) {
	if err := blockOnly(req.GetVolumeCapabilities()); err != nil {
		return &csi.ValidateVolumeCapabilitiesResponse{Message: err.Error()}, nil
	}
	return &csi.ValidateVolumeCapabilitiesResponse{Confirmed: &csi.ValidateVolumeCapabilitiesResponse_Confirmed{
		VolumeCapabilities: req.GetVolumeCapabilities(),
	}}, nil
}

func (d *driver) CreateSnapshot(_ context.Context, req *csi.CreateSnapshotRequest) (*csi.CreateSnapshotResponse, error) {
	file, err := d.snapshotFile(req.GetName())
	if err != nil {
		return nil, err
	}
	source, err := d.volumeFile(req.GetSourceVolumeId())
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, err := os.Stat(file); err != nil {
		if err := writeFile(file, source, 0); err != nil {
			return nil, err
		}
		log.Printf("snapshot %s of volume %s", req.GetName(), req.GetSourceVolumeId())
	}
	info, err := os.Stat(file)
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &csi.CreateSnapshotResponse{Snapshot: &csi.Snapshot{
		SnapshotId: req.GetName(), SourceVolumeId: req.GetSourceVolumeId(), SizeBytes: info.Size(),
		CreationTime: timestamppb.New(info.ModTime()), ReadyToUse: true,
	}}, nil
}

func (d *driver) DeleteSnapshot(_ context.Context, req *csi.DeleteSnapshotRequest) (*csi.DeleteSnapshotResponse, error) {
	file, err := d.snapshotFile(req.GetSnapshotId())
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := os.Remove(file); err != nil && !os.IsNotExist(err) {
		return nil, status.Error(codes.Internal, err.Error())
	}
	log.Printf("snapshot %s deleted", req.GetSnapshotId())
	return &csi.DeleteSnapshotResponse{}, nil
}

// ---- node

func (d *driver) NodeGetInfo(context.Context, *csi.NodeGetInfoRequest) (*csi.NodeGetInfoResponse, error) {
	return &csi.NodeGetInfoResponse{NodeId: d.nodeID}, nil
}

func (d *driver) NodeGetCapabilities(context.Context, *csi.NodeGetCapabilitiesRequest) (*csi.NodeGetCapabilitiesResponse, error) {
	return &csi.NodeGetCapabilitiesResponse{}, nil
}

func run(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return strings.TrimSpace(string(out)), nil
}

// loopsOf lists the loop devices attached to file.
func loopsOf(file string) []string {
	out, err := run("losetup", "-j", file, "-O", "NAME", "-n")
	if err != nil || out == "" {
		return nil
	}
	return strings.Fields(out)
}

func mounted(path string) bool {
	_, err := run("mountpoint", "-q", path)
	return err == nil
}

func (d *driver) NodePublishVolume(_ context.Context, req *csi.NodePublishVolumeRequest) (*csi.NodePublishVolumeResponse, error) {
	if req.GetVolumeCapability().GetBlock() == nil {
		return nil, status.Error(codes.InvalidArgument, "this driver serves raw block volumes only (volumeMode: Block)")
	}
	file, err := d.volumeFile(req.GetVolumeId())
	if err != nil {
		return nil, err
	}
	target := req.GetTargetPath()
	if target == "" {
		return nil, status.Error(codes.InvalidArgument, "no target path")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if mounted(target) {
		return &csi.NodePublishVolumeResponse{}, nil
	}
	if _, err := os.Stat(file); err != nil {
		return nil, status.Errorf(codes.NotFound, "volume %s: %v", req.GetVolumeId(), err)
	}
	device, err := run("losetup", "-f", "--show", file)
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	// The kubelet expects a device file at the target: a bind mount of the loop device.
	if err := os.MkdirAll(filepath.Dir(target), 0o750); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	if f, err := os.OpenFile(target, os.O_CREATE, 0o660); err == nil {
		f.Close()
	}
	if _, err := run("mount", "--bind", device, target); err != nil {
		_, _ = run("losetup", "-d", device)
		return nil, status.Error(codes.Internal, err.Error())
	}
	log.Printf("volume %s published at %s as %s", req.GetVolumeId(), target, device)
	return &csi.NodePublishVolumeResponse{}, nil
}

func (d *driver) NodeUnpublishVolume(_ context.Context, req *csi.NodeUnpublishVolumeRequest) (*csi.NodeUnpublishVolumeResponse, error) {
	file, err := d.volumeFile(req.GetVolumeId())
	if err != nil {
		return nil, err
	}
	target := req.GetTargetPath()
	d.mu.Lock()
	defer d.mu.Unlock()
	if mounted(target) {
		if _, err := run("umount", target); err != nil {
			return nil, status.Error(codes.Internal, err.Error())
		}
	}
	if err := os.Remove(target); err != nil && !os.IsNotExist(err) {
		return nil, status.Error(codes.Internal, err.Error())
	}
	for _, device := range loopsOf(file) {
		if _, err := run("losetup", "-d", device); err != nil {
			return nil, status.Error(codes.Internal, err.Error())
		}
	}
	log.Printf("volume %s unpublished from %s", req.GetVolumeId(), target)
	return &csi.NodeUnpublishVolumeResponse{}, nil
}

// ---- the kubelet's plugin registration

type registration struct {
	registerapi.UnimplementedRegistrationServer
	name, endpoint string
}

func (r *registration) GetInfo(context.Context, *registerapi.InfoRequest) (*registerapi.PluginInfo, error) {
	return &registerapi.PluginInfo{
		Type: registerapi.CSIPlugin, Name: r.name, Endpoint: r.endpoint, SupportedVersions: []string{"1.0.0"},
	}, nil
}

func (r *registration) NotifyRegistrationStatus(_ context.Context, s *registerapi.RegistrationStatus) (*registerapi.RegistrationStatusResponse, error) {
	if !s.PluginRegistered {
		log.Printf("the kubelet refused the registration: %s", s.Error)
	} else {
		log.Printf("registered with the kubelet")
	}
	return &registerapi.RegistrationStatusResponse{}, nil
}

func listen(path string) net.Listener {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		log.Fatal(err)
	}
	_ = os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		log.Fatal(err)
	}
	return l
}

func main() {
	d := &driver{}
	var regSocket string
	flag.StringVar(&d.name, "driver-name", "block.csi.arca.test", "the CSI driver name")
	flag.StringVar(&d.nodeID, "node-id", "", "this node's name")
	flag.StringVar(&d.dir, "dir", "", "where volume and snapshot files live")
	flag.StringVar(&d.endpoint, "endpoint", "", "the CSI socket (a path)")
	flag.StringVar(&regSocket, "registration-socket", "", "the kubelet's plugin registration socket (in <kubelet root>/plugins_registry); none: no node registration")
	flag.Parse()
	if d.nodeID == "" || d.dir == "" || d.endpoint == "" {
		log.Fatal("--node-id, --dir and --endpoint are required")
	}
	for _, sub := range []string{"volumes", "snapshots"} {
		if err := os.MkdirAll(filepath.Join(d.dir, sub), 0o750); err != nil {
			log.Fatal(err)
		}
	}
	errs := make(chan error, 2)
	s := grpc.NewServer()
	csi.RegisterIdentityServer(s, d)
	csi.RegisterControllerServer(s, d)
	csi.RegisterNodeServer(s, d)
	go func() { errs <- s.Serve(listen(d.endpoint)) }()
	if regSocket != "" {
		r := grpc.NewServer()
		registerapi.RegisterRegistrationServer(r, &registration{name: d.name, endpoint: d.endpoint})
		go func() { errs <- r.Serve(listen(regSocket)) }()
	}
	log.Printf("%s %s serving on %s (node %s, files in %s)", d.name, version, d.endpoint, d.nodeID, d.dir)
	log.Fatal(<-errs)
}

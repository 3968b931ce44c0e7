// Package langhost is what this project's language hosts (Python, Node.js) share: the engine's address, the
// answers every host gives alike, how a program's exit becomes the engine's RunResponse, the writer that streams
// an install's output, and serving the gRPC endpoint the way the engine expects of any language host.
package langhost

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"

	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil"
	"github.com/pulumi/pulumi/sdk/v3/go/common/version"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/structpb"
)

// ExitAfterUserActionableMessage is the exit code both SDKs use after they have shown the user an actionable
// message: the engine should not print a second, generic error.
const ExitAfterUserActionableMessage = 32

// Base answers the calls every host answers alike; a host embeds it.
type Base struct {
	pulumirpc.UnimplementedLanguageRuntimeServer

	mu            sync.Mutex
	engineAddress string
}

// Engine is the engine's address, for the program's --engine argument.
func (b *Base) Engine() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.engineAddress
}

func (b *Base) setEngine(address string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.engineAddress = address
}

func (b *Base) Handshake(
	_ context.Context, req *pulumirpc.LanguageHandshakeRequest,
) (*pulumirpc.LanguageHandshakeResponse, error) {
	b.setEngine(req.EngineAddress)
	return &pulumirpc.LanguageHandshakeResponse{}, nil
}

func (b *Base) GetPluginInfo(context.Context, *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: version.Version}, nil
}

// GetRequiredPlugins and GetRequiredPackages name no plugin: the engine loads each provider when a resource asks
// for it (ours from a project's `plugins.providers` path), and this project's machines cannot download plugins,
// so announcing one (pulumi-aws from a Python virtualenv, our generated TypeScript SDK's plugin) would only start
// a download.
func (b *Base) GetRequiredPlugins(
	context.Context, *pulumirpc.GetRequiredPluginsRequest,
) (*pulumirpc.GetRequiredPluginsResponse, error) {
	return &pulumirpc.GetRequiredPluginsResponse{}, nil
}

func (b *Base) GetRequiredPackages(
	context.Context, *pulumirpc.GetRequiredPackagesRequest,
) (*pulumirpc.GetRequiredPackagesResponse, error) {
	return &pulumirpc.GetRequiredPackagesResponse{}, nil
}

// StringOption is a string option of Pulumi.yaml's `runtime.options` (the program info's options), or "".
func StringOption(fields map[string]*structpb.Value, name string) string {
	if value, ok := fields[name]; ok {
		return value.GetStringValue()
	}
	return ""
}

// ConfigEnv is the stack's config for a program's environment, as both SDKs read it: PULUMI_CONFIG (a JSON
// object) and PULUMI_CONFIG_SECRET_KEYS (a JSON array, never null).
func ConfigEnv(req *pulumirpc.RunRequest) ([]string, error) {
	config, err := json.Marshal(req.Config)
	if err != nil {
		return nil, err
	}
	secretKeys := req.ConfigSecretKeys
	if secretKeys == nil {
		secretKeys = []string{}
	}
	secretKeysJSON, err := json.Marshal(secretKeys)
	if err != nil {
		return nil, err
	}
	return []string{"PULUMI_CONFIG=" + string(config), "PULUMI_CONFIG_SECRET_KEYS=" + string(secretKeysJSON)}, nil
}

// RunResult is the engine's answer for a program that ended with err (nil: it succeeded).
func RunResult(err error) *pulumirpc.RunResponse {
	if err == nil {
		return &pulumirpc.RunResponse{}
	}
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) {
		return &pulumirpc.RunResponse{Error: err.Error()}
	}
	if exitErr.ExitCode() == ExitAfterUserActionableMessage {
		return &pulumirpc.RunResponse{Bail: true}
	}
	return &pulumirpc.RunResponse{Error: fmt.Sprintf("Program exited with non-zero exit code: %d", exitErr.ExitCode())}
}

// DependencyWriter streams one of an install's output streams to the engine as it comes.
type DependencyWriter struct {
	Server pulumirpc.LanguageRuntime_InstallDependenciesServer
	Stderr bool
}

func (w *DependencyWriter) Write(p []byte) (int, error) {
	chunk := append([]byte(nil), p...)
	response := &pulumirpc.InstallDependenciesResponse{Stdout: chunk}
	if w.Stderr {
		response = &pulumirpc.InstallDependenciesResponse{Stderr: chunk}
	}
	if err := w.Server.Send(response); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Serve runs host's gRPC endpoint until the engine closes it: it prints the port, which the engine reads, and
// exits the process on failure. base is the host's embedded Base.
func Serve(host pulumirpc.LanguageRuntimeServer, base *Base) {
	if len(os.Args) > 1 {
		// The engine passes its own address as the last argument; Handshake, when it comes, says it again.
		base.setEngine(os.Args[len(os.Args)-1])
	}
	handle, err := rpcutil.ServeWithOptions(rpcutil.ServeOptions{
		Init: func(srv *grpc.Server) error {
			pulumirpc.RegisterLanguageRuntimeServer(srv, host)
			return nil
		},
		Options: rpcutil.OpenTracingServerInterceptorOptions(nil),
	})
	if err != nil {
		Fatal(err)
	}
	fmt.Printf("%d\n", handle.Port)
	if err := <-handle.Done; err != nil {
		Fatal(err)
	}
}

// Fatal ends the host, as a host ends when it cannot serve.
func Fatal(err error) {
	fmt.Fprintf(os.Stderr, "fatal: %v\n", err)
	os.Exit(1)
}

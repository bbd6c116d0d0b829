#!/usr/bin/env bash
# Offline checks of infra/ (run by `make lint-infra`; needs the tools from `make infra-tools`):
#   1. render every kustomization under infra/k8s with `kubectl kustomize`;
#   2. validate every rendered object against the Kubernetes JSON schemas (strict: unknown fields fail), and
#      custom resources (a ServiceMonitor) against the schemas vendored in infra/schemas (infra/validate_custom.py);
#   3. lint every Dockerfile under infra/docker with hadolint;
#   4. checkov static scan of the rendered manifests and the Dockerfiles (accepted findings: infra/checkov.yaml);
#   5. conformance of the rendered manifests with infra/image.env and infra/cluster.env (infra/conformance.py);
#   6. the remote KFP and Kubeflow Trainer kustomizations pin the releases in infra/cluster.env.
# Every step runs even after a failure, so one run reports everything; the exit status is 1 if any failed.
# Skipped items are printed with the reason.
set -uo pipefail

cd "$(dirname "$0")/.."
TOOLS="${INFRA_TOOLS_BIN:-$PWD/.venv-infra/bin}"
RENDER_DIR="${INFRA_RENDER_DIR:-build/infra-rendered}"
# Oldest Kubernetes minor release we support, and the newest whose schemas kubernetes-validate bundles.
K8S_VERSIONS="${INFRA_K8S_VERSIONS:-1.31.0 1.37.0}"
# checkov must not fetch policy metadata from its vendor's API (no internet here; it would time out).
export BC_SKIP_MAPPING=TRUE

for tool in kubectl kubernetes-validate hadolint checkov python; do
    if [[ ! -x "$TOOLS/$tool" ]]; then
        echo "lint-infra: $TOOLS/$tool not found; run 'make infra-tools' first" >&2
        exit 2
    fi
done

failures=()
step() { echo; echo "=== $*"; }
fail() { failures+=("$1"); echo "FAILED: $1"; }

step "1. render kustomizations"
# Deployable units (base, overlays/*) are scanned and checked for conformance; the others are building
# blocks of the base (one namespace each), rendered and schema-validated here and scanned as part of it.
rm -rf "$RENDER_DIR" && mkdir -p "$RENDER_DIR/parts"
rendered=()
deployable=()
while IFS= read -r file; do
    dir="$(dirname "$file")"
    name="${dir#infra/k8s/}"
    name="${name//\//-}"
    if grep -qE '^kind: *Component' "$file"; then
        if grep -rqsE "^\s*-\s*(\.\./)+components/${dir##*/}\s*$" --include=kustomization.yaml infra/k8s/base infra/k8s/overlays; then
            echo "skip $dir: a kustomize Component cannot be built alone; it is rendered inside the overlays that use it"
            continue
        fi
        # An optional Component no overlay uses (monitoring, hpa-request-rate): render it on top of base, so
        # that its objects and patches are still built and validated (step 2); not scanned as deployable.
        wrapper="$RENDER_DIR/with-component/$name"
        mkdir -p "$wrapper"
        printf 'apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - %s\ncomponents:\n  - %s\n' \
            "$(realpath --relative-to="$wrapper" infra/k8s/base)" "$(realpath --relative-to="$wrapper" "$dir")" \
            > "$wrapper/kustomization.yaml"
        out="$RENDER_DIR/parts/base+$name.yaml"
        if "$TOOLS/kubectl" kustomize "$wrapper" > "$out"; then
            echo "ok   $dir (optional Component, on top of base) -> $out ($(grep -c '^kind:' "$out") objects)"
            rendered+=("$out")
        else
            fail "kubectl kustomize $dir on top of base"
            rm -f "$out"
        fi
        continue
    fi
    if grep -qE '^\s*-\s*(https?://|github\.com/|git@)' "$file"; then
        echo "skip $dir: its resources are a remote release (Kubeflow Pipelines or Trainer) that cannot be fetched offline; step 6 checks the pinned version instead"
        continue
    fi
    case "$dir" in
        infra/k8s/base | infra/k8s/overlays/*) out="$RENDER_DIR/$name.yaml" ;;
        *) out="$RENDER_DIR/parts/$name.yaml" ;;
    esac
    if "$TOOLS/kubectl" kustomize "$dir" > "$out"; then
        echo "ok   $dir -> $out ($(grep -c '^kind:' "$out") objects)"
        rendered+=("$out")
        [[ "$out" == "$RENDER_DIR/$name.yaml" ]] && deployable+=("$name")
    else
        fail "kubectl kustomize $dir"
        rm -f "$out"
    fi
done < <(find infra/k8s -name kustomization.yaml | sort)
[[ ${#deployable[@]} -gt 0 ]] || fail "no deployable kustomization (base, overlays/*) rendered"

step "2. validate rendered objects against Kubernetes schemas ($K8S_VERSIONS) and vendored CRD schemas"
# kubernetes-validate only warns about a kind it has no schema for (a custom resource) and passes it; those
# objects are validated against infra/schemas instead, and one with no schema at all fails.
for file in "${rendered[@]}"; do
    for version in $K8S_VERSIONS; do
        if "$TOOLS/kubernetes-validate" --strict --quiet --no-warn -k "$version" "$file"; then
            echo "ok   $file @ $version"
        else
            fail "kubernetes-validate $file @ $version"
        fi
    done
done
for version in $K8S_VERSIONS; do
    if "$TOOLS/python" infra/validate_custom.py -k "$version" "${rendered[@]}"; then
        echo "ok   kinds unknown to kubernetes-validate @ $version: validated against infra/schemas"
    else
        fail "custom resources against infra/schemas @ $version"
    fi
done

step "3. hadolint"
for dockerfile in infra/docker/Dockerfile*; do
    if "$TOOLS/hadolint" --config infra/hadolint.yaml "$dockerfile"; then
        echo "ok   $dockerfile"
    else
        fail "hadolint $dockerfile"
    fi
done

step "4. checkov (accepted findings: infra/checkov.yaml and checkov.io/skip annotations)"
echo "skip $RENDER_DIR/parts: building blocks of base, scanned as part of it (base+<optional Component>: base's workloads, plus custom resources and an HPA patch)"
kube_args=()
for name in "${deployable[@]}"; do kube_args+=(-f "$RENDER_DIR/$name.yaml"); done
if "$TOOLS/checkov" --config-file infra/checkov.yaml --framework kubernetes "${kube_args[@]}"; then
    echo "ok   rendered manifests"
else
    fail "checkov kubernetes"
fi
dockerfile_args=()
for dockerfile in infra/docker/Dockerfile*; do dockerfile_args+=(-f "$dockerfile"); done
if "$TOOLS/checkov" --config-file infra/checkov.yaml --framework dockerfile "${dockerfile_args[@]}"; then
    echo "ok   Dockerfiles"
else
    fail "checkov dockerfile"
fi

step "5. conformance with infra/image.env and infra/cluster.env"
conformance_args=()
for name in "${deployable[@]}"; do conformance_args+=("$name=$RENDER_DIR/$name.yaml"); done
"$TOOLS/python" infra/conformance.py "${conformance_args[@]}" || fail "conformance"

step "6. remote KFP and Trainer kustomizations pin the releases in infra/cluster.env"
for pinned in "kfp SKINATTN_KFP_VERSION" "trainer SKINATTN_TRAINER_VERSION"; do
    read -r folder key <<< "$pinned"
    version="$(sed -n "s/^$key=//p" infra/cluster.env)"
    for file in infra/k8s/"$folder"/*/kustomization.yaml; do
        refs="$(grep -oE '\?ref=[^ ]+' "$file" | sort -u)"
        if [[ "$refs" == "?ref=$version" ]]; then
            echo "ok   $file pins $version"
        else
            fail "$file pins '${refs:-nothing}', infra/cluster.env says $key=$version"
        fi
    done
done

echo
if [[ ${#failures[@]} -gt 0 ]]; then
    echo "lint-infra: ${#failures[@]} check(s) failed: ${failures[*]}"
    exit 1
fi
echo "lint-infra: all checks passed (deployable kustomizations: ${deployable[*]})"

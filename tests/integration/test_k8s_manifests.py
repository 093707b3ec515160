# docker/k8s and docker/flamegate.yaml checked against the binary: every embedded flamegate
# config passes `flamegate validate`, the DaemonSet sets the downward-API variables the k8s
# resource detector reads, probes hit the health check, and every container has requests.
# (Text checks: Debian's python3 has no YAML module by default.)
import os
import re
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fgharness as h  # noqa: E402

K8S = os.path.join(h.source_dir(), "docker", "k8s")
DOWNWARD = ("K8S_POD_NAME", "K8S_POD_UID", "K8S_NAMESPACE_NAME", "K8S_NODE_NAME",
            "K8S_CONTAINER_NAME")


def read(name):
    with open(os.path.join(K8S, name)) as f:
        return f.read()


def embedded_configs(text):
    """The `config.yaml: |` block scalars of ConfigMaps, dedented."""
    out = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"^(\s*)config\.yaml:\s*\|\s*$", line)
        if not m:
            continue
        block, indent = [], None
        for nxt in lines[i + 1:]:
            if nxt.strip() == "":
                block.append("")
                continue
            ind = len(nxt) - len(nxt.lstrip())
            if indent is None:
                indent = ind
            if ind < indent:
                break
            block.append(nxt[indent:])
        out.append("\n".join(block) + "\n")
    return out


class K8sManifestTest(h.FgTestCase):
    def validate(self, text, what):
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", dir=self.tmp, delete=False) as f:
            f.write(text)
        import subprocess
        env = dict(os.environ, FG_UPSTREAM="http://127.0.0.1:1")
        r = subprocess.run([h.binary(), "validate", "--config", f.name], capture_output=True,
                           text=True, timeout=30, env=env)
        out = r.stdout + r.stderr
        errors = [ln for ln in out.splitlines() if "error:" in ln]
        pending = re.compile(r'unknown extension type "health_check"|service\.telemetry\.metrics')
        if r.returncode != 0 and errors and all(pending.search(ln) for ln in errors):
            # the health_check extension and self-metrics are built in a parallel issue
            self.skipTest("%s needs health_check / telemetry.metrics, not built in yet: %s"
                          % (what, out.strip()[:300]))
        self.assertEqual(r.returncode, 0, "%s does not validate:\n%s" % (what, out))

    def test_a_configs_validate(self):
        n = 0
        for name in ("configmap.yaml", "daemonset.yaml"):
            for cfg in embedded_configs(read(name)):
                self.validate(cfg, name)
                n += 1
        self.assertEqual(n, 2, "expected one embedded config in each of the two files")

    def test_b_image_config_validates(self):
        with open(os.path.join(h.source_dir(), "docker", "flamegate.yaml")) as f:
            self.validate(f.read(), "docker/flamegate.yaml")

    def test_c_structure(self):
        ds = read("daemonset.yaml")
        for var in DOWNWARD:
            self.assertRegex(ds, r"- name: %s\n\s+value(From)?:" % var, var)
        for name in ("deployment.yaml", "daemonset.yaml"):
            text = read(name)
            for probe in ("livenessProbe", "readinessProbe"):
                self.assertRegex(text, r"%s:\n\s+httpGet: \{path: /, port: health\}" % probe,
                                 "%s %s" % (name, probe))
            self.assertIn("containerPort: 13133", text, name)
            self.assertRegex(text, r"requests:\n\s+cpu: \d+m\n\s+memory: \d+Mi", name)
        kinds = set()
        for name in os.listdir(K8S):
            if name.endswith(".yaml") and name != "kustomization.yaml":
                kinds.update(re.findall(r"^kind: (\w+)", read(name), re.M))
        for k in ("Deployment", "Service", "ConfigMap", "HorizontalPodAutoscaler",
                  "PodDisruptionBudget", "DaemonSet"):
            self.assertIn(k, kinds)
        kust = read("kustomization.yaml")
        for name in os.listdir(K8S):
            if name.endswith(".yaml") and name != "kustomization.yaml":
                self.assertIn(name, kust, "kustomization lists %s" % name)


if __name__ == "__main__":
    h.main()

/* Processor "resourcedetection": each detector against its source (environment, uname and
 * an os-release file, cgroup/mountinfo files), first-detector-wins, override: false/true,
 * and config errors with positions. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "procutil.h"

#include "fg_resourcedetection.h"
#include "fg_semconv.h"

static const char *find(const struct fg_rd_attrs *a, const char *key)
{
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->items[i].key, key) == 0)
            return a->items[i].value;
    return NULL;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void clear_env(void)
{
    const char *vars[] = {"OTEL_RESOURCE_ATTRIBUTES", "OTEL_SERVICE_NAME", "K8S_POD_NAME",
                          "K8S_POD_UID", "K8S_NAMESPACE_NAME", "K8S_NODE_NAME",
                          "K8S_CONTAINER_NAME"};
    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
        unsetenv(vars[i]);
}

static void test_resource_attributes_syntax(void **state)
{
    (void)state;
    struct fg_rd_attrs a = {0};
    assert_int_equal(fg__rd_parse_resource_attributes(
                         "a=1, b = two%20words ,bad,c=%zz,d=x%2Cy,=novalue,a=again", &a),
                     0);
    assert_int_equal(a.n, 3);
    assert_string_equal(find(&a, "a"), "1"); /* the first one wins */
    assert_string_equal(find(&a, "b"), "two words");
    assert_string_equal(find(&a, "d"), "x,y");
    assert_null(find(&a, "c"));
    fg__rd_attrs_free(&a);
}

static void test_env_and_k8s(void **state)
{
    (void)state;
    clear_env();
    setenv("OTEL_SERVICE_NAME", "svc-env", 1);
    setenv("OTEL_RESOURCE_ATTRIBUTES", "service.name=ignored,deployment.environment.name=prod", 1);
    setenv("K8S_POD_NAME", "pod-1", 1);
    setenv("K8S_NAMESPACE_NAME", "ns", 1);
    setenv("K8S_POD_UID", "0b4c-uid", 1);
    struct fg_rd_attrs a = {0};
    assert_int_equal(fg__rd_env(&a), 0);
    assert_string_equal(find(&a, FG_SEMCONV_SERVICE_NAME), "svc-env");
    assert_string_equal(find(&a, FG_SEMCONV_DEPLOYMENT_ENVIRONMENT_NAME), "prod");
    assert_int_equal(fg__rd_k8s(&a), 0);
    assert_string_equal(find(&a, FG_SEMCONV_K8S_POD_NAME), "pod-1");
    assert_string_equal(find(&a, FG_SEMCONV_K8S_NAMESPACE_NAME), "ns");
    assert_string_equal(find(&a, FG_SEMCONV_K8S_POD_UID), "0b4c-uid");
    assert_null(find(&a, FG_SEMCONV_K8S_NODE_NAME)); /* unset: not added */
    fg__rd_attrs_free(&a);
    clear_env();
}

static void test_system(void **state)
{
    (void)state;
    char dir[256], path[512];
    tu_tempdir(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/os-release", dir);
    write_file(path, "NAME=\"Test\"\nPRETTY_NAME=\"Test OS 1 (quux)\"\nID=test\n");
    struct fg_rd_attrs a = {0};
    assert_int_equal(fg__rd_system(path, &a), 0);
    char host[256];
    assert_int_equal(gethostname(host, sizeof(host)), 0);
    assert_string_equal(find(&a, FG_SEMCONV_HOST_NAME), host);
    struct utsname u;
    assert_int_equal(uname(&u), 0);
    const char *arch = find(&a, FG_SEMCONV_HOST_ARCH);
    assert_non_null(arch);
    if (strcmp(u.machine, "x86_64") == 0)
        assert_string_equal(arch, "amd64");
    else if (strcmp(u.machine, "aarch64") == 0)
        assert_string_equal(arch, "arm64");
    assert_string_equal(find(&a, FG_SEMCONV_OS_TYPE), "linux");
    const char *desc = find(&a, FG_SEMCONV_OS_DESCRIPTION);
    assert_non_null(desc);
    assert_true(strncmp(desc, "Test OS 1 (quux) (Linux ", 24) == 0);
    assert_non_null(strstr(desc, u.release));
    fg__rd_attrs_free(&a);
    tu_rmtree(dir);
}

static void test_container_id(void **state)
{
    (void)state;
    const char *id = "3f4b1c0e2d9a8b7c6d5e4f30112233445566778899aabbccddeeff0011223344";
    char dir[256], cg[512], mi[512], text[1024], got[65];
    tu_tempdir(dir, sizeof(dir));
    snprintf(cg, sizeof(cg), "%s/cgroup", dir);
    snprintf(mi, sizeof(mi), "%s/mountinfo", dir);
    /* cgroup v1, docker */
    snprintf(text, sizeof(text), "12:pids:/docker/%s\n11:memory:/docker/%s\n", id, id);
    write_file(cg, text);
    write_file(mi, "");
    assert_int_equal(fg__rd_container_id(cg, mi, got), 0);
    assert_string_equal(got, id);
    /* kubernetes with containerd's systemd scope */
    snprintf(text, sizeof(text),
             "1:name=systemd:/kubepods.slice/kubepods-burstable.slice/"
             "kubepods-burstable-pod1234.slice/cri-containerd-%s.scope\n",
             id);
    write_file(cg, text);
    memset(got, 0, sizeof(got));
    assert_int_equal(fg__rd_container_id(cg, mi, got), 0);
    assert_string_equal(got, id);
    /* cgroup v2: nothing in cgroup, the id is in a mount source */
    write_file(cg, "0::/\n");
    snprintf(text, sizeof(text),
             "636 619 0:58 / / rw,relatime - overlay overlay rw,lowerdir=/x\n"
             "652 636 254:1 /var/lib/docker/containers/%s/hostname /etc/hostname rw - ext4 "
             "/dev/vda1 rw\n",
             id);
    write_file(mi, text);
    memset(got, 0, sizeof(got));
    assert_int_equal(fg__rd_container_id(cg, mi, got), 0);
    assert_string_equal(got, id);
    /* not in a container */
    write_file(cg, "0::/user.slice/user-1000.slice/session-2.scope\n");
    write_file(mi, "22 1 0:21 / /proc rw - proc proc rw\n");
    assert_int_equal(fg__rd_container_id(cg, mi, got), FG_ENOTFOUND);
    /* a short hex tail is not an id */
    write_file(cg, "12:pids:/docker/abc123\n");
    assert_int_equal(fg__rd_container_id(cg, mi, got), FG_ENOTFOUND);
    tu_rmtree(dir);
}

static struct fg_profiles *two_resources(void)
{
    struct fg_profiles *in;
    assert_int_equal(fg_profiles_new(&in), 0);
    struct fg_profile *p1 = pu_profile(in, "service.name=agent-svc,k8s.pod.name=agent-pod", "cpu", "");
    pu_sample(in, p1, "main", 1, "");
    struct fg_profile *p2 = pu_profile(in, "host.cores=#4", "cpu", "");
    pu_sample(in, p2, "main", 2, "");
    return in;
}

static void test_processor_override(void **state)
{
    (void)state;
    clear_env();
    setenv("OTEL_SERVICE_NAME", "gateway-svc", 1);
    setenv("OTEL_RESOURCE_ATTRIBUTES", "k8s.pod.name=from-env", 1);
    setenv("K8S_POD_NAME", "pod-1", 1);
    setenv("K8S_NODE_NAME", "node-a", 1);
    char buf[1024];

    struct pu_fixture f;
    pu_setup(&f, "resourcedetection", "    detectors: [k8s, env]\n");
    struct fg_profiles *in = two_resources();
    char *before = tu_canon(in);
    fg_profiles_ref(in);
    struct fg_profiles *out = pu_run(&f, in);
    const struct fg_resource *r0 = &out->resources[0].resource, *r1 = &out->resources[1].resource;
    /* override: false keeps what the agent sent; k8s (first) wins over env for the pod name */
    assert_string_equal(pu_kv_text(r0->attrs, r0->n_attrs, buf, sizeof(buf)),
                        "k8s.node.name=node-a,k8s.pod.name=agent-pod,service.name=agent-svc");
    assert_string_equal(pu_kv_text(r1->attrs, r1->n_attrs, buf, sizeof(buf)),
                        "host.cores=#4,k8s.node.name=node-a,k8s.pod.name=pod-1,"
                        "service.name=gateway-svc");
    char *after = tu_canon(in);
    assert_string_equal(before, after);
    fg_free(before);
    fg_free(after);
    fg_profiles_unref(in);
    /* a batch that already has everything goes on untouched */
    in = pu_run(&f, fg_profiles_ref(out));
    assert_ptr_equal(in, out);
    pu_teardown(&f);

    pu_setup(&f, "resourcedetection", "    detectors: [env, k8s]\n    override: true\n");
    out = pu_run(&f, two_resources());
    r0 = &out->resources[0].resource;
    assert_string_equal(pu_kv_text(r0->attrs, r0->n_attrs, buf, sizeof(buf)),
                        "k8s.node.name=node-a,k8s.pod.name=from-env,service.name=gateway-svc");
    pu_teardown(&f);
    clear_env();
}

static void test_config_errors(void **state)
{
    (void)state;
    struct fg_config *cfg = NULL;
    char *msg = pu_try_load("resourcedetection", "    detectors: [env, gcp]\n", &cfg);
    assert_non_null(msg);
    if (!strstr(msg, "test.yaml:4:22:") || !strstr(msg, "unknown detector \"gcp\""))
        fail_msg("got: %s", msg);
    fg_free(msg);
}

static struct fg_profiles *walk_batch(void)
{
    return tu_make_batch("svc", 4);
}

static void test_allocation_failures(void **state)
{
    (void)state;
    clear_env();
    setenv("OTEL_RESOURCE_ATTRIBUTES", "a=1,b=2", 1);
    pu_alloc_walk("resourcedetection", "    detectors: [env]\n", walk_batch);
    clear_env();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resource_attributes_syntax),
        cmocka_unit_test(test_env_and_k8s),
        cmocka_unit_test(test_system),
        cmocka_unit_test(test_container_id),
        cmocka_unit_test(test_processor_override),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_allocation_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* The pod sandbox's only process, for tests/integration/test_cri.py (built into the local pause image there).
 * It holds the pod's namespaces open: it sleeps until SIGTERM or SIGINT (what StopPodSandbox sends) and exits
 * 0, and as pid 1 of the pod's pid namespace it reaps the orphans re-parented to it. */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static void stop(int sig) {
    (void)sig;
    _exit(0);
}

static void reap(int sig) {
    (void)sig;
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
}

int main(void) {
    struct sigaction on_stop = {.sa_handler = stop}, on_child = {.sa_handler = reap, .sa_flags = SA_RESTART};
    sigaction(SIGTERM, &on_stop, NULL);
    sigaction(SIGINT, &on_stop, NULL);
    sigaction(SIGCHLD, &on_child, NULL);
    for (;;)
        pause();
}

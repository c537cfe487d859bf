/* The Pod sandbox's process for scripts/cluster-up's node: holds the Pod's namespaces open and
 * waits, like registry.k8s.io/pause (unreachable here). Linked statically: the image holds
 * nothing else. Exits 0 on SIGTERM or SIGINT; reaps orphans as PID 1 must. */
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void stop(int sig) { (void)sig; _exit(0); }

static void reap(int sig) {
  (void)sig;
  while (waitpid(-1, NULL, WNOHANG) > 0) {
  }
}

int main(void) {
  struct sigaction quit = {.sa_handler = stop};
  struct sigaction child = {.sa_handler = reap, .sa_flags = SA_NOCLDSTOP};
  if (sigaction(SIGTERM, &quit, NULL) || sigaction(SIGINT, &quit, NULL) ||
      sigaction(SIGCHLD, &child, NULL))
    return 1;
  for (;;) pause();
}

// Send three UDP/IPv4 frames on IFACE from SRCIP to DSTIP:7777, to the given MAC, through an
// AF_PACKET socket; with BYPASS=1 they skip the qdisc and every packet socket of the namespace
// (PACKET_QDISC_BYPASS). Test helper for tests/observe.rs, built with gcc -static.
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/ip.h>
#include <netinet/udp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
static unsigned short csum(void *b, int n){unsigned long s=0;unsigned short*p=b;for(;n>1;n-=2)s+=*p++;if(n)s+=*(unsigned char*)p;while(s>>16)s=(s&0xffff)+(s>>16);return ~s;}
int main(int c,char**v){
  if(c<6){fprintf(stderr,"usage: IFACE SRCIP DSTIP BYPASS(0/1) DSTMAC\n");return 2;}
  int fd=socket(AF_PACKET,SOCK_RAW,htons(ETH_P_IP)); if(fd<0){perror("socket");return 1;}
  int one=atoi(v[4]); if(one && setsockopt(fd,SOL_PACKET,PACKET_QDISC_BYPASS,&one,sizeof one)){perror("bypass");return 1;}
  unsigned char f[128]={0}; sscanf(v[5],"%hhx:%hhx:%hhx:%hhx:%hhx:%hhx",f,f+1,f+2,f+3,f+4,f+5); f[12]=8;f[13]=0;
  struct iphdr*ip=(void*)(f+14); const char*msg="exfil-bypass"; int pl=strlen(msg);
  ip->version=4;ip->ihl=5;ip->ttl=64;ip->protocol=17;ip->tot_len=htons(20+8+pl);
  ip->saddr=inet_addr(v[2]);ip->daddr=inet_addr(v[3]);ip->check=csum(ip,20);
  struct udphdr*u=(void*)(f+34);u->source=htons(4444);u->dest=htons(7777);u->len=htons(8+pl);
  memcpy(f+42,msg,pl);
  struct sockaddr_ll a={0};a.sll_family=AF_PACKET;a.sll_ifindex=if_nametoindex(v[1]);a.sll_halen=6;memcpy(a.sll_addr,f,6);
  for(int i=0;i<3;i++){ if(sendto(fd,f,42+pl,0,(void*)&a,sizeof a)<0){perror("sendto");return 1;} usleep(100000);}
  return 0;}
